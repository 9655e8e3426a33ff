/* The other half of the two-object module (see pair_a.c); also the weak undefined symbols. */
int shared_counter;
extern int a_value;

int is_even(unsigned n);
int ping(int n);

/* Weak undefined: null unless some module or the host defines them. */
extern int maybe(void) __attribute__((weak));
extern int maybe_value __attribute__((weak));

static int helper(int x)
{
    return x * 3;
}

int is_odd(unsigned n)
{
    shared_counter++;
    return n == 0 ? 0 : is_even(n - 1);
}

int b_helper(int x)
{
    return helper(x);
}

int b_scale(int x)
{
    return x * a_value / 10 + ping(x / 3);
}

int counter_bumps(int n)
{
    shared_counter = 5;
    is_even((unsigned)n);
    return shared_counter;
}

int probe_maybe(void)
{
    return maybe ? maybe() : -1;
}

int probe_maybe_value(void)
{
    return &maybe_value ? maybe_value : -2;
}
