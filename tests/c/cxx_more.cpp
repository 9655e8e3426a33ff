// A second C++ object using the same inline functions and templates as cxx_objects.cpp and
// cxx_except.cpp (the same COMDAT groups), linked with them or as a module of its own.
#include <vector>

#include "shapes.h"

extern "C" long more_weighted(int n)
{
    std::vector<long> values;
    for (int i = 0; i < n; ++i)
        values.push_back(clamp_to<long>(i * 5 % 11, 1, 8));
    Ring<long, 5> ring;
    for (int i = 0; i < n; ++i)
        ring.push(i);
    return weighted_total(values) * 100 + ring.sum();
}

extern "C" int more_serial(void)
{
    return next_serial();
}
