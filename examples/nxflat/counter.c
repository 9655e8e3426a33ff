/* An NXFLAT program (examples/demo.py): its data is its own in every instance, and the
 * firmware calls back into it through a function pointer. */
extern void report(const char *msg, int value);
extern int call_twice(int (*fn)(int), int x);

static int step = 10; /* .data: this instance's */
int total;            /* .bss */

int add_step(int x)
{
    total += step;
    return x + step;
}

int main(int argc, char **argv)
{
    int r = call_twice(add_step, argc * 100); /* a callback from the firmware */
    report(argv[0], r);
    step++;
    return total;
}
