#include "show.h"

long parse_or_code(int which);
int vector_at(int index);
int nested_rethrow(int limit);
int catch_all(int kind);
long string_work(int n);

int main(void)
{
    SHOW_L(parse_or_code(0));
    SHOW_L(parse_or_code(1));
    SHOW_L(parse_or_code(2));
    SHOW_L(parse_or_code(3));
    SHOW_L(parse_or_code(4));
    SHOW_L(parse_or_code(5));
    SHOW_I(vector_at(3));
    SHOW_I(vector_at(12));
    SHOW_I(nested_rethrow(0));
    SHOW_I(nested_rethrow(3));
    SHOW_I(nested_rethrow(6));
    SHOW_I(catch_all(0));
    SHOW_I(catch_all(1));
    SHOW_I(catch_all(2));
    SHOW_I(catch_all(3));
    SHOW_I(catch_all(4));
    SHOW_L(string_work(5));
    SHOW_L(string_work(30));
    return 0;
}
