#include "show.h"

int is_even(unsigned n);
int is_odd(unsigned n);
int a_helper(int x);
int b_helper(int x);
int ping(int n);
int parity_walk(int n);
int counter_bumps(int n);
int probe_maybe(void);
int probe_maybe_value(void);

int main(void)
{
    SHOW_I(is_even(10));
    SHOW_I(is_odd(7));
    SHOW_I(is_even(7));
    SHOW_I(a_helper(5));
    SHOW_I(b_helper(5));
    SHOW_I(ping(12));
    SHOW_I(parity_walk(9));
    SHOW_I(parity_walk(16));
    SHOW_I(counter_bumps(6));
    SHOW_I(probe_maybe());
    SHOW_I(probe_maybe_value());
    return 0;
}
