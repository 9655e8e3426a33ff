// C++ exceptions thrown and caught inside the module: across functions, through destructors,
// with std::string and std::vector, rethrown, and thrown by libstdc++ itself.
#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "shapes.h"

namespace {

struct ParseError : std::runtime_error {
    int position;
    ParseError(const std::string &what, int pos) : std::runtime_error(what), position(pos) {}
};

int cleanups;

struct Cleanup {
    int weight;
    explicit Cleanup(int w) : weight(w) {}
    ~Cleanup() { cleanups += weight; }
};

int parse_digit(char c, int pos)
{
    if (c < '0' || c > '9')
        throw ParseError(std::string("bad digit '") + c + "'", pos);
    return c - '0';
}

long parse_number(const std::string &text)
{
    Cleanup guard(1);
    long value = 0;
    for (std::size_t i = 0; i < text.size(); ++i)
        value = value * 10 + parse_digit(text[i], static_cast<int>(i));
    return value;
}

int dive(int depth, int limit)
{
    Cleanup guard(10);
    if (depth == limit)
        throw depth * 7;
    try {
        return dive(depth + 1, limit);
    } catch (int) {
        if (depth % 2)
            throw;  // rethrow the same exception object
        throw depth * 1000;
    }
}

}  // namespace

extern "C" long parse_or_code(int which)
{
    static const char *const inputs[] = {"12345", "12a45", "", "987654321", "7x", "0042"};
    try {
        std::string text(inputs[which % 6]);
        if (text.empty())
            throw std::invalid_argument("empty input");
        return parse_number(text);
    } catch (const ParseError &e) {
        std::printf("parse error at %d: %s\n", e.position, e.what());
        std::fflush(nullptr);
        return -100 - e.position;
    } catch (const std::exception &e) {
        std::printf("other error: %s\n", e.what());
        std::fflush(nullptr);
        return -1;
    }
}

extern "C" int vector_at(int index)
{
    std::vector<int> v;
    for (int i = 0; i < 10; ++i)
        v.push_back(i * i + next_serial() * 0);
    try {
        return v.at(static_cast<std::size_t>(index));  // libstdc++ throws std::out_of_range
    } catch (const std::out_of_range &) {
        return -1;
    }
}

extern "C" int nested_rethrow(int limit)
{
    cleanups = 0;
    try {
        return dive(0, limit);
    } catch (int code) {
        return code + cleanups;
    }
}

extern "C" int catch_all(int kind)
{
    try {
        switch (kind) {
        case 0: throw std::string("a string");
        case 1: throw std::vector<int>{1, 2, 3};
        case 2: throw 2.5;
        case 3: throw std::length_error("too long");
        default: return kind;
        }
    } catch (const std::string &s) {
        return static_cast<int>(s.size());
    } catch (const std::vector<int> &v) {
        return static_cast<int>(v.size()) * 10 + v.back();
    } catch (const std::logic_error &e) {
        return 500 + static_cast<int>(std::string(e.what()).size());
    } catch (...) {
        return -7;
    }
}

extern "C" long string_work(int n)
{
    std::vector<std::string> words;
    for (int i = 0; i < n; ++i) {
        std::string w = "w" + std::to_string(i * 37 % 101);
        if (i % 3 == 0)
            w += "-tail";
        words.push_back(w);
    }
    std::sort(words.begin(), words.end());
    std::string joined;
    for (const auto &w : words)
        joined += w.substr(0, 3);
    unsigned long h = 0;
    for (char c : joined)
        h = h * 131 + static_cast<unsigned char>(c);
    std::printf("%s ... %zu chars, found at %zu\n", joined.substr(0, 12).c_str(), joined.size(),
                joined.find("w9"));
    std::fflush(nullptr);
    return static_cast<long>(h % 1000000007);
}
