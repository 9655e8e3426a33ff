/* Function pointer tables, switch statements dense enough for jump tables at -O2, global and
 * static data, recursion. Also the library module that client.c links against. */
#include <stdio.h>

typedef long (*op_fn)(long, long);

static long op_add(long a, long b) { return a + b; }
static long op_sub(long a, long b) { return a - b; }
static long op_mul(long a, long b) { return a * b; }
static long op_div(long a, long b) { return b ? a / b : 0; }
static long op_mod(long a, long b) { return b ? a % b : 0; }
static long op_max(long a, long b) { return a > b ? a : b; }
static long op_min(long a, long b) { return a < b ? a : b; }
static long op_xor(long a, long b) { return a ^ b; }

/* read-only table of pointers: relocated, then protected */
static op_fn const ops[] = { op_add, op_sub, op_mul, op_div, op_mod, op_max, op_min, op_xor };
/* writable table, partly filled */
op_fn user_ops[4] = { op_xor, op_mul };

int counters[8] = { 3, 1, 4, 1, 5, 9, 2, 6 };
static int bumps;
long total_applied;

long apply_op(int which, long a, long b)
{
    long r = ops[which & 7](a, b);
    total_applied += r;
    return r;
}

long apply_user(int which, long a, long b)
{
    op_fn f = user_ops[which & 3];
    return f ? f(a, b) : -1;
}

int install_user(int slot, int which)
{
    user_ops[slot & 3] = ops[which & 7];
    return slot & 3;
}

/* Dense switch: a jump table in .rodata at -O2. */
int classify(int c)
{
    switch (c) {
    case 0: return 17;
    case 1: return 4;
    case 2: return 99;
    case 3: return -5;
    case 4: return 23;
    case 5: return 8;
    case 6: return 61;
    case 7: return 0;
    case 8: return 12;
    case 9: return 44;
    case 10: return 7;
    default: return -1;
    }
}

static const char *op_name(int which)
{
    switch (which) {
    case 0: return "add";
    case 1: return "sub";
    case 2: return "mul";
    case 3: return "div";
    case 4: return "mod";
    case 5: return "max";
    case 6: return "min";
    case 7: return "xor";
    default: return "?";
    }
}

/* A small interpreter: another switch, on characters. */
long evaluate(int program)
{
    static const char *const programs[] = { "34+2*", "92-3-", "123**9%", "82d5m3x", "77+7+1-" };
    const char *p = programs[program % 5];
    long stack[16];
    int sp = 0;
    for (; *p; p++) {
        long b, a;
        switch (*p) {
        case '0': case '1': case '2': case '3': case '4':
        case '5': case '6': case '7': case '8': case '9':
            stack[sp++] = *p - '0';
            continue;
        case '+': b = stack[--sp]; a = stack[--sp]; stack[sp++] = apply_op(0, a, b); break;
        case '-': b = stack[--sp]; a = stack[--sp]; stack[sp++] = apply_op(1, a, b); break;
        case '*': b = stack[--sp]; a = stack[--sp]; stack[sp++] = apply_op(2, a, b); break;
        case 'd': b = stack[--sp]; a = stack[--sp]; stack[sp++] = apply_op(3, a, b); break;
        case '%': b = stack[--sp]; a = stack[--sp]; stack[sp++] = apply_op(4, a, b); break;
        case 'm': b = stack[--sp]; a = stack[--sp]; stack[sp++] = apply_op(5, a, b); break;
        case 'x': b = stack[--sp]; a = stack[--sp]; stack[sp++] = apply_op(7, a, b); break;
        default: return -999;
        }
    }
    return sp == 1 ? stack[0] : -sp;
}

long fib(int n)
{
    return n < 2 ? n : fib(n - 1) + fib(n - 2);
}

int ackermann(int m, int n)
{
    if (m == 0)
        return n + 1;
    if (n == 0)
        return ackermann(m - 1, 1);
    return ackermann(m - 1, ackermann(m, n - 1));
}

static long hanoi(int n, int from, int to, int via, long *weight)
{
    if (n == 0)
        return 0;
    long moves = hanoi(n - 1, from, via, to, weight);
    *weight += (long)n * (from * 3 + to);
    return moves + 1 + hanoi(n - 1, via, to, from, weight);
}

long hanoi_signature(int n)
{
    long weight = 0;
    long moves = hanoi(n, 0, 2, 1, &weight);
    return moves * 1000000 + weight;
}

int bump(int k)
{
    bumps += k;
    counters[k & 7] += bumps;
    return bumps * 100 + counters[k & 7];
}

int describe_ops(int n)
{
    int total = 0;
    for (int i = 0; i < n; i++) {
        long r = apply_op(i, 100 + i, 7);
        printf("%s(%d, 7) = %ld, class %d\n", op_name(i), 100 + i, r, classify(i));
        total += (int)r;
    }
    fflush(NULL);
    return total;
}

long total_so_far(void)
{
    return total_applied;
}
