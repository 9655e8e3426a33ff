/* Module A: calls the static module, module B, itself; data pointing everywhere; a bss. */
int static_add(int, int);
int static_mul(int, int);
int static_bump(void);
extern int static_counter;
extern int static_table[4];
void OSReport(const char *message, int value);

int b_square(int x);          /* in module B */
extern int b_value;           /* in module B */

int a_bss_counter;            /* bss */
static int a_scratch[64];     /* bss */
int (*a_ops[3])(int, int) = {static_add, static_mul, 0};
int *a_points_at_b = &b_value;

static int a_local_twice(int x) { return 2 * x; }

int a_compute(int x) {
    a_bss_counter += 1;
    a_scratch[x & 63] = x;
    return static_add(a_local_twice(x), static_table[x & 3]) + a_scratch[x & 63];
}

int a_calls_b(int x) { return b_square(x) + 1; }
int a_reads_b(void) { return a_points_at_b ? *a_points_at_b : -1; }
int a_through_table(int i, int x, int y) { return a_ops[i & 1](x, y); }
int a_static_state(void) { return static_bump() + static_counter; }
int a_report(int x) { OSReport("a_report called", x); return x + 1; }
int a_bss_value(void) { return a_bss_counter; }

void _prolog(void) { a_bss_counter = 1000; }
void _epilog(void) { OSReport("a epilog", a_bss_counter); }
int _unresolved(void) { return -99; }
