/* Module code for the emulated PowerPC tests. The same file is linked into the static
 * program too (static_main.c), so every function can be run both ways and compared.
 * Built with -mcpu=750 -msdata=none -fno-pic, it uses R_PPC_ADDR16_HA/LO for data,
 * R_PPC_REL24 for calls, R_PPC_ADDR32 for pointer tables and jump tables, R_PPC_REL32 in
 * .eh_frame. */

extern int report(const char *fmt, ...); /* an OSReport stand-in: a host function */
extern int scale(int x);                 /* a function of the static program */
extern int base_value;                   /* data of the static program */

static int calls;
int counter; /* bss */
int primes[8] = {2, 3, 5, 7, 11, 13, 17, 19};
const char *const words[] = {"alpha", "beta", "gamma", "delta"};

struct point {
    int x, y;
};
static const struct point corners[] = {{0, 0}, {3, 0}, {3, 4}, {0, 4}};

int calc_add(int a, int b)
{
    calls++;
    return a + b;
}

int calc_fib(int n) { return n < 2 ? n : calc_fib(n - 1) + calc_fib(n - 2); }

int calc_switch(int x)
{
    switch (x) {
    case 0: return 5;
    case 1: return 7;
    case 2: return 11;
    case 3: return 13;
    case 4: return 17;
    case 5: return 19;
    case 6: return 23;
    default: return -1;
    }
}

int calc_scaled(int x) { return scale(x) + base_value; }

int calc_prime(int i) { return primes[i & 7]; }

int calc_word_length(int i)
{
    const char *w = words[i & 3];
    int n = 0;
    while (w[n])
        n++;
    return n;
}

int calc_perimeter(void)
{
    int total = 0;
    for (unsigned i = 0; i < sizeof corners / sizeof corners[0]; i++) {
        const struct point *a = &corners[i], *b = &corners[(i + 1) % 4];
        total += (a->x > b->x ? a->x - b->x : b->x - a->x) + (a->y > b->y ? a->y - b->y : b->y - a->y);
    }
    return total;
}

int calc_double(int x)
{
    double d = x;
    d = d * 1.5 + 0.25;
    return (int)(d * 4);
}

int calc_div64(int a, int b)
{
    long long big = (long long)a << 20;
    return (int)(big / b); /* __divdi3, from the static program's libgcc */
}

int calc_report(int n) { return report("calc %d: %s", n, words[n & 3]); }

typedef int (*op_fn)(int, int);
static int op_sub(int a, int b) { return a - b; }
static int op_mul(int a, int b) { return a * b; }
static op_fn const ops[] = {calc_add, op_sub, op_mul};

int calc_apply(int op, int a, int b) { return ops[op % 3](a, b); }

int calc_calls(void) { return calls; }

int calc_count(int by)
{
    counter += by;
    return counter;
}

int calc_many(int a, int b, int c, int d, int e, int f, int g, int h, int i, int j)
{
    /* ten arguments: the last two arrive on the stack */
    return a + 2 * b + 3 * c + 4 * d + 5 * e + 6 * f + 7 * g + 8 * h + 9 * i + 10 * j;
}
