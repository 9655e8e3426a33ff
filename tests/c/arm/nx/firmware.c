/* The firmware of the NXFLAT tests: real code in flash, which programs bind to through its
 * export table (symtab.c, made by `linkload mksymtab exports.csv`, compiled in). report() is
 * replaced by a Python host function (intercepted at its address); the rest runs emulated.
 * call_twice() and sort_ints() call back into a program through a function pointer with r9
 * and r10 holding their own values, as firmware that uses those registers does. */
#include "firmware.h"

void _start(void)
{
    for (;;)
        ;
}

int __nxflat_abi_v2 = 2; /* the ABI v2 marker programs import */

static char heap[16384] __attribute__((aligned(8)));
static size_t heap_used;

void *malloc(size_t size)
{
    void *p;
    if (heap_used + size > sizeof heap)
        return 0;
    p = heap + heap_used;
    heap_used += (size + 7) & ~(size_t)7;
    return p;
}

size_t strlen(const char *s)
{
    const char *p = s;
    while (*p)
        p++;
    return p - s;
}

__attribute__((noinline)) void report(const char *msg, int value)
{
    __asm__ volatile("" ::: "memory");
    (void)msg;
    (void)value;
}

/* The firmware's own use of r9 and r10, which programs' PIC base registers are. */
#define CLOBBER_PIC_REGISTERS(value) \
    __asm__ volatile("mov r9, %0\n\tmov r10, %0" : : "r"(value) : "r9", "r10")

int call_twice(int (*fn)(int), int x)
{
    int r;
    CLOBBER_PIC_REGISTERS(0xdeadbee0);
    r = fn(x);
    CLOBBER_PIC_REGISTERS(0xbadf00d0);
    r = fn(r);
    CLOBBER_PIC_REGISTERS(0); /* (and no tail call, which would restore them first) */
    return r;
}

void sort_ints(int *v, int n, int (*cmp)(const int *, const int *))
{
    CLOBBER_PIC_REGISTERS(0x0ddba110);
    for (int i = 1; i < n; i++) {
        int x = v[i], j = i;
        while (j > 0 && cmp(&v[j - 1], &x) > 0) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
}
