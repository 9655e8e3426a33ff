/* A freestanding program for the locator's tests: code, read-only tables of pointers (to
   functions and to strings), data holding pointers (to data, to read-only data, to code),
   bss, and a console port at 0xE0000000 whose bytes the emulated target prints. Its entry
   point returns a checksum of what it did. */

#define CONSOLE ((volatile unsigned char *)0xE0000000)

typedef int (*operation)(int, int);

static int add(int a, int b) { return a + b; }
static int sub(int a, int b) { return a - b; }
static int mul(int a, int b) { return a * b; }

static const operation operations[] = {add, sub, mul};
static const char *const names[] = {"add", "sub", "mul"};

struct shape {
    const char *name;
    int sides;
    operation area;
};

struct shape shapes[] = {{"triangle", 3, mul}, {"square", 4, add}, {"pentagon", 5, sub}};
struct shape *favourite = &shapes[1];
const char *greeting = "hello from the board\n";
int (*callback)(int, int) = add;

static char buffer[512];   /* bss: zeroed by the boot table */
int counter;               /* bss */
volatile int how_many = 3; /* data the compiler cannot fold */

static void put(char c) { *CONSOLE = (unsigned char)c; counter++; }

static void print(const char *s) { while (*s) put(*s++); }

static void number(int n) {
    char digits[12];
    int i = 0;
    if (n < 0) { put('-'); n = -n; }
    do { digits[i++] = (char)('0' + n % 10); n /= 10; } while (n);
    while (i) put(digits[--i]);
}

int start(void) {
    int sum = 0;
    print(greeting);
    for (int i = 0; i < how_many; i++) {
        int value = operations[i](7, 3);
        print(names[i]);
        put(' ');
        number(value);
        put('\n');
        sum += value;
    }
    for (int i = 0; i < how_many; i++) {
        buffer[i] += (char)shapes[i].sides;   /* bss must start zeroed */
        print(shapes[i].name);
        put('=');
        number(shapes[i].area(shapes[i].sides, buffer[i]));
        put('\n');
    }
    print(favourite->name);
    put('\n');
    number(callback(counter, 1000));
    put('\n');
    return sum + counter;
}
