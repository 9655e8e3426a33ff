/* A Cortex-M firmware that NXFLAT programs bind to (examples/demo.py): it exports report()
 * (replaced by Python in the demo), call_twice() and the ABI v2 marker (see exports.csv).
 * call_twice() uses r9 and r10 for itself, as firmware may, before it calls back into the
 * program: the program's PIC base register does not survive that on its own. */
void _start(void)
{
    for (;;)
        ;
}

int __nxflat_abi_v2 = 2;

__attribute__((noinline)) void report(const char *msg, int value)
{
    __asm__ volatile("" ::: "memory");
    (void)msg;
    (void)value;
}

int call_twice(int (*fn)(int), int x)
{
    __asm__ volatile("mov r9, %0\n\tmov r10, %0" : : "r"(0xdeadbee0) : "r9", "r10");
    x = fn(fn(x));
    __asm__ volatile("mov r9, %0\n\tmov r10, %0" : : "r"(0) : "r9", "r10");
    return x;
}
