/* A small freestanding "firmware" for the locator demo: a calibration table of pointers in
   read-only data, a ring buffer in bss, a state machine through function pointers in data,
   and a console port at 0xE0000000. Built with mingw-w64 (i686) as a PE image with a .reloc
   section, then located for two boards by `make demo`. */

#define CONSOLE ((volatile unsigned char *)0xE0000000)

struct point { int raw; int celsius; };

static const struct point low[] = {{0, -40}, {512, 25}};
static const struct point high[] = {{512, 25}, {1023, 125}};
static const struct point *const ranges[] = {low, high};

static int samples[16];        /* bss: zeroed by the boot table */
static int count;

static void put(char c) { *CONSOLE = (unsigned char)c; }
static void print(const char *s) { while (*s) put(*s++); }
static void number(int n) {
    char d[12]; int i = 0;
    if (n < 0) { put('-'); n = -n; }
    do { d[i++] = (char)('0' + n % 10); n /= 10; } while (n);
    while (i) put(d[--i]);
}

static int convert(int raw) {
    const struct point *r = ranges[raw >= 512];
    return r[0].celsius + (raw - r[0].raw) * (r[1].celsius - r[0].celsius) / (r[1].raw - r[0].raw);
}

static void record(int raw) { samples[count++ % 16] = convert(raw); }
static void report(int raw) {
    (void)raw;
    int sum = 0;
    for (int i = 0; i < count && i < 16; i++) sum += samples[i];
    print("average ");
    number(count ? sum / (count < 16 ? count : 16) : 0);
    print(" C\n");
}

static void (*const actions[])(int) = {record, report};
const char *banner = "sensor firmware\n";
volatile int readings[] = {100, 400, 512, 700, 1023, -1};

int start(void) {
    print(banner);
    for (int i = 0; readings[i] >= 0; i++) {
        actions[0](readings[i]);
        print("raw ");
        number(readings[i]);
        print(" -> ");
        number(samples[(count - 1) % 16]);
        print(" C\n");
    }
    actions[1](0);
    return count;
}
