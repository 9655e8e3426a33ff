/* An NXFLAT program whose functions the firmware calls back through pointers (call_twice,
 * sort_ints: real firmware code that uses r9 and r10 for itself). Its data is reached
 * through its PIC base register, so a callback must arrive with that register set to this
 * instance's D-space: linkload's loader gives each instance trampolines that do it. */
extern void report(const char *msg, int value);
extern int call_twice(int (*fn)(int), int x);
extern void sort_ints(int *v, int n, int (*cmp)(const int *, const int *));

static int scale = 3; /* .data, through the GOT */
int calls;            /* .bss */
int values[6] = {5, -2, 9, 0, 3, 7};

int triple_plus(int x)
{
    calls++;
    return x * scale + 1;
}

static int descending(const int *a, const int *b)
{
    calls++;
    return *b - *a;
}

int main(int argc, char **argv)
{
    int r = call_twice(triple_plus, argc); /* argc = 1: 4, then 13 */
    report("call_twice", r);
    sort_ints(values, 6, descending);
    report("largest", values[0]);
    report("smallest", values[5]);
    report(argv[0], calls);
    scale++; /* this instance's: a second run of it computes with 4 */
    return r * 10 + values[0];
}
