#include "show.h"

long apply_op(int which, long a, long b);
long apply_user(int which, long a, long b);
int install_user(int slot, int which);
int classify(int c);
long evaluate(int program);
long fib(int n);
int ackermann(int m, int n);
long hanoi_signature(int n);
int bump(int k);
int describe_ops(int n);
long total_so_far(void);

int main(void)
{
    SHOW_L(apply_op(0, 40, 2));
    SHOW_L(apply_op(3, -81, 4));
    SHOW_L(apply_op(4, 81, 7));
    SHOW_L(apply_op(7, 12345, 999));
    SHOW_L(apply_user(0, 5, 3));
    SHOW_L(apply_user(1, 5, 3));
    SHOW_L(apply_user(2, 5, 3));
    SHOW_I(install_user(2, 5));
    SHOW_L(apply_user(2, 5, 3));
    SHOW_I(classify(0));
    SHOW_I(classify(3));
    SHOW_I(classify(9));
    SHOW_I(classify(10));
    SHOW_I(classify(11));
    SHOW_I(classify(-2));
    SHOW_L(evaluate(0));
    SHOW_L(evaluate(1));
    SHOW_L(evaluate(2));
    SHOW_L(evaluate(3));
    SHOW_L(evaluate(4));
    SHOW_L(fib(20));
    SHOW_I(ackermann(2, 3));
    SHOW_L(hanoi_signature(10));
    SHOW_I(bump(3));
    SHOW_I(bump(5));
    SHOW_I(bump(11));
    SHOW_I(describe_ops(8));
    SHOW_L(total_so_far());
    return 0;
}
