/* The static module (the "DOL"): functions and data REL modules use. Freestanding: no libc. */
int static_counter = 100;
int static_table[4] = {3, 1, 4, 1};

int static_add(int a, int b) { return a + b; }
int static_mul(int a, int b) { return a * b; }
int static_bump(void) { return ++static_counter; }

/* The tests put Python in its place (Linker.host_function); REL modules reach it by its
   address, which makerel took from this file. */
__attribute__((noinline)) void OSReport(const char *message, int value) {
    (void)message;
    (void)value;
    __asm__ volatile("");
}

void _start(void) { for (;;) { } }
