// Inline functions and templates shared by the C++ fixtures: every object that uses them gets a
// copy in a COMDAT group, and only one copy per group may be linked.
#ifndef SHAPES_H
#define SHAPES_H
#include <cstdio>
#include <vector>

template <typename T>
inline T clamp_to(T v, T lo, T hi)
{
    return v < lo ? lo : (hi < v ? hi : v);
}

template <typename T, int N>
struct Ring {
    T data[N] = {};
    int head = 0;
    int count = 0;
    void push(T v)
    {
        data[head] = v;
        head = (head + 1) % N;
        if (count < N)
            ++count;
    }
    T sum() const
    {
        T s = T();
        for (int i = 0; i < count; ++i)
            s += data[i];
        return s;
    }
};

template <typename T>
T weighted_total(const std::vector<T> &values)
{
    T total = T();
    for (std::size_t i = 0; i < values.size(); ++i)
        total += values[i] * static_cast<T>(i + 1);
    return total;
}

// An inline function with a static local: one instance per process, not per object.
inline int next_serial()
{
    static int serial = 0;
    return ++serial;
}

#endif
