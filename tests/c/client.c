/* A module linked after dispatch.c, calling its functions and reading its data. */
long fib(int n);
long apply_op(int which, long a, long b);
extern int counters[8];

typedef long (*fib_fn)(int);
fib_fn const client_table[] = { fib };   /* a data relocation against another module */

long client_compute(int n)
{
    return fib(n) * 1000 + apply_op(2, n, 3) * 10 + counters[n & 7];
}

long client_indirect(int n)
{
    return client_table[0](n);
}
