/* Functions taking function pointers, for callbacks from Python (ctypes CFUNCTYPE). */
#include <stdlib.h>

typedef int (*int_fn)(int);
typedef int (*cmp_fn)(const void *, const void *);

int apply_sum(int_fn f, int n)
{
    int s = 0;
    for (int i = 0; i < n; i++)
        s += f(i);
    return s;
}

int sort_checksum(cmp_fn cmp, int n)
{
    int data[64];
    unsigned seed = 12345;
    if (n > 64)
        n = 64;
    for (int i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        data[i] = (int)(seed >> 16) % 1000;
    }
    qsort(data, (size_t)n, sizeof data[0], cmp);
    unsigned sum = 0;
    for (int i = 0; i < n; i++)
        sum = sum * 7 + (unsigned)data[i];
    return (int)(sum & 0x7fffffff);
}
