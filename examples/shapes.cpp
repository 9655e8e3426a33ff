// A C++ module: virtual functions, a static constructor, exceptions thrown and caught inside.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

struct Shape {
    virtual ~Shape() = default;
    virtual double area() const = 0;
};
struct Square : Shape {
    double side;
    explicit Square(double s) : side(s) {}
    double area() const override { return side * side; }
};
struct Circle : Shape {
    double r;
    explicit Circle(double radius) : r(radius) {}
    double area() const override { return 3.14159265358979 * r * r; }
};

static std::vector<Shape *> registry;
static struct Registrar {
    Registrar() { registry.push_back(new Square(3)); registry.push_back(new Circle(1)); }
    ~Registrar() { for (Shape *s : registry) delete s; std::puts("shapes: registry freed"); std::fflush(stdout); }
} registrar;

static double checked_area(int index) {
    if (index < 0 || index >= (int)registry.size())
        throw std::out_of_range("no shape number " + std::to_string(index));
    return registry[index]->area();
}

extern "C" int shape_count() { return (int)registry.size(); }

/* Area times 1000, or -1 when the index is bad (the exception is caught inside the module). */
extern "C" long area_milli(int index) {
    try {
        return (long)(checked_area(index) * 1000);
    } catch (const std::out_of_range &e) {
        std::printf("shapes: caught \"%s\"\n", e.what());
        std::fflush(stdout);
        return -1;
    }
}
