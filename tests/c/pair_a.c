/* One half of a module made of two objects that call each other (see pair_b.c). Compiled with
 * -fcommon: shared_counter is a common symbol in both objects and must become one variable. */
#include <stdio.h>

int shared_counter;
int a_value = 100;

int is_odd(unsigned n);
int b_scale(int x);

/* Same name as a static function of pair_b.c: each object must keep its own. */
static int helper(int x)
{
    return x + 1000;
}

int is_even(unsigned n)
{
    shared_counter++;
    return n == 0 ? 1 : is_odd(n - 1);
}

int a_helper(int x)
{
    return helper(x);
}

int ping(int n)
{
    if (n <= 0)
        return 0;
    return 1 + b_scale(n - 1) % 7 + ping(n - 2);
}

int parity_walk(int n)
{
    shared_counter = 0;
    int even = is_even((unsigned)n);
    printf("parity_walk(%d): even=%d after %d steps\n", n, even, shared_counter);
    fflush(NULL);
    return even * 1000 + shared_counter;
}
