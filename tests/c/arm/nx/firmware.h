/* What the test firmware exports to NXFLAT programs (see exports.csv). */
#ifndef FIRMWARE_H
#define FIRMWARE_H
typedef __SIZE_TYPE__ size_t;
extern int __nxflat_abi_v2;
void *malloc(size_t size);
size_t strlen(const char *s);
void report(const char *msg, int value);
int call_twice(int (*fn)(int), int x);
void sort_ints(int *v, int n, int (*cmp)(const int *, const int *));
#endif
