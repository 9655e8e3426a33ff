/* A comparator that reads its sort key from a variable: with a trampoline per key, each
   closure carries its own data into qsort. */
#include <stdlib.h>

struct order { int descending; };
struct order *current_order;

int compare_ints(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    int c = (x > y) - (x < y);
    return current_order->descending ? -c : c;
}

void sort_ints(int *v, int n, int (*cmp)(const void *, const void *)) { qsort(v, n, sizeof *v, cmp); }
