/* Module B: defines what A uses, and calls A back. */
int a_compute(int x);
int b_value = 7;
int b_calls = 0;

int b_square(int x) { b_calls++; return x * x; }
int b_calls_a(int x) { return a_compute(x) * 10; }
int b_count(void) { return b_calls; }
