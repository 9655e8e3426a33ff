// Static constructors and destructors, virtual functions, templates and inline functions.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "shapes.h"

extern "C" {
typedef void (*observer_fn)(int);
}

static observer_fn observer;
static int live;
int constructed_total;

namespace {

struct Tracker {
    int id;
    explicit Tracker(int i) : id(i)
    {
        ++live;
        ++constructed_total;
        std::printf("construct tracker %d (live %d)\n", id, live);
        std::fflush(nullptr);
    }
    ~Tracker()
    {
        --live;
        std::printf("destroy tracker %d (live %d)\n", id, live);
        std::fflush(nullptr);
        if (observer)
            observer(id);
    }
};

Tracker first_tracker(1);

struct Shape {
    virtual ~Shape() {}
    virtual double area() const = 0;
    virtual const char *name() const = 0;
    virtual int sides() const { return 0; }
};

struct Rect : Shape {
    double w, h;
    Rect(double w_, double h_) : w(w_), h(h_) {}
    double area() const override { return w * h; }
    const char *name() const override { return "rect"; }
    int sides() const override { return 4; }
};

struct Square : Rect {
    explicit Square(double s) : Rect(s, s) {}
    const char *name() const override { return "square"; }
};

struct Circle : Shape {
    double r;
    explicit Circle(double r_) : r(r_) {}
    double area() const override { return std::acos(-1.0) * r * r; }
    const char *name() const override { return "circle"; }
};

struct Triangle : Shape {
    double a, b, c;
    Triangle(double a_, double b_, double c_) : a(a_), b(b_), c(c_) {}
    double area() const override
    {
        double s = (a + b + c) / 2;
        return std::sqrt(s * (s - a) * (s - b) * (s - c));
    }
    const char *name() const override { return "triangle"; }
    int sides() const override { return 3; }
};

std::unique_ptr<Shape> make_shape(int i)
{
    switch (i % 4) {
    case 0: return std::unique_ptr<Shape>(new Rect(1 + i, 2 + i * 0.5));
    case 1: return std::unique_ptr<Shape>(new Square(0.5 + i));
    case 2: return std::unique_ptr<Shape>(new Circle(0.25 * i));
    default: return std::unique_ptr<Shape>(new Triangle(3, 4, 5 + (i % 3) * 0.5));
    }
}

}  // namespace

Tracker second_tracker(2);

extern "C" double shapes_total(int n)
{
    std::vector<std::unique_ptr<Shape>> shapes;
    for (int i = 0; i < n; ++i)
        shapes.push_back(make_shape(i));
    double total = 0;
    int sides = 0;
    for (const auto &s : shapes) {
        total += s->area();
        sides += s->sides();
    }
    std::printf("%d shapes, %d sides, first %s, last %s\n", n, sides, shapes.front()->name(),
                shapes.back()->name());
    std::fflush(nullptr);
    return total;
}

extern "C" long template_mix(long n)
{
    Ring<long, 5> ring;
    Ring<double, 3> dring;
    for (long i = 0; i < n; ++i) {
        ring.push(i * i);
        dring.push(static_cast<double>(i) / 4);
    }
    std::vector<long> values;
    for (long i = 0; i < n; ++i)
        values.push_back(clamp_to<long>(i * 7 % 13, 2, 10));
    return ring.sum() * 1000 + weighted_total(values) + static_cast<long>(dring.sum() * 100);
}

extern "C" int local_static(int k)
{
    static Tracker lazy(3);  // constructed on first call, destroyed with the module
    return lazy.id * 100 + k + live;
}

extern "C" int serial_now(void)
{
    return next_serial();
}

extern "C" int live_trackers(void)
{
    return live * 1000 + constructed_total;
}

extern "C" void set_observer(observer_fn f)
{
    observer = f;
}
