// C++ in a module: global objects constructed when the module is linked (.init_array, run
// by the linker through the space), destroyed when it is unlinked (__cxa_atexit and
// __cxa_finalize, host functions in the tests), virtual calls through vtables (R_PPC_ADDR32).
// Built with -fno-exceptions -fno-rtti: the static program has no C++ runtime.

extern "C" int report(const char *fmt, ...);

struct Counter {
    int value;
    explicit Counter(int v) : value(v) { report("construct %d", v); }
    ~Counter() { report("destruct %d", value); }
    virtual int step(int by)
    {
        value += by;
        return value;
    }
};

struct Doubler : Counter {
    explicit Doubler(int v) : Counter(v) {}
    int step(int by) override { return Counter::step(2 * by); }
};

static Doubler doubler(10);
static Counter counter(1);

extern "C" int cxx_step(int which, int by)
{
    Counter *c = which ? static_cast<Counter *>(&doubler) : &counter;
    return c->step(by);
}
