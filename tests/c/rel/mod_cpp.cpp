// A C++ module: a static constructor that _prolog runs (the SDK way: walk _ctors).
extern "C" void OSReport(const char *message, int value);

struct Counter {
    int value;
    Counter() : value(42) { OSReport("constructor ran", value); }
};
static Counter counter;

typedef void (*voidfunctionptr)(void);
extern "C" voidfunctionptr _ctors[];   // from the partial link's script: the constructor list

extern "C" void _prolog(void) {
    for (voidfunctionptr *c = _ctors; *c; c++) (*c)();
}
extern "C" void _epilog(void) {}
extern "C" int cpp_value(void) { return counter.value; }
