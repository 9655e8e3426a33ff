/* Calls a host function (qsort, in Python) that calls back into emulated code (the
 * comparator) for every comparison. */

typedef int (*compare_fn)(const void *, const void *);
extern void qsort(void *base, unsigned n, unsigned size, compare_fn cmp);
extern int report(const char *fmt, ...);

static int comparisons;

static int descending(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    comparisons++;
    return (y > x) - (y < x);
}

int sort_descending(int *v, int n)
{
    comparisons = 0;
    qsort(v, n, sizeof *v, descending);
    report("sorted %d values with %d comparisons", n, comparisons);
    return comparisons;
}
