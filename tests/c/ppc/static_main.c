/* The static program (the "DOL") of the emulated PowerPC tests: linked at 0x80004000 with
 * calc.c, whose functions the tests run in place to compare with the module's. Modules
 * import scale, base_value, report and libgcc's helpers from it. */

void _start(void)
{
    for (;;)
        ;
}

int base_value = 1000;

__attribute__((noinline)) int scale(int x) { return 3 * x; }

/* Replaced by a Python host function (intercepted at this address). */
__attribute__((noinline)) int report(const char *fmt, ...)
{
    __asm__ volatile("" ::: "memory");
    (void)fmt;
    return -1;
}

/* The bits of libc the compiler calls by itself. */
__attribute__((noinline)) unsigned long strlen(const char *s)
{
    const char *p = s;
    while (*p)
        p++;
    return p - s;
}
