/* The static module of the REL demo: what modules may call. Freestanding (no libc). */
int frame_counter = 0;

int next_frame(void) { return ++frame_counter; }

/* Python stands in for this one in the demo (Linker.host_function). */
__attribute__((noinline)) void OSReport(const char *message, int value) {
    (void)message;
    (void)value;
    __asm__ volatile("");
}

void _start(void) { for (;;) { } }
