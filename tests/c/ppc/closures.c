/* Comparators that carry their own data through trampolines (ffcall's closures). */

struct key {
    int field;
    int descending;
};
struct key *current_key; /* the variable a trampoline stores its data into */

int by_key(const void *a, const void *b)
{
    int x = ((const int *)a)[current_key->field], y = ((const int *)b)[current_key->field];
    return current_key->descending ? (y > x) - (y < x) : (x > y) - (x < y);
}

/* Insertion sort of n pairs of ints with whatever comparator it is given. */
void sort_pairs(int *v, int n, int (*cmp)(const void *, const void *))
{
    for (int i = 1; i < n; i++) {
        int a = v[2 * i], b = v[2 * i + 1], j = i;
        while (j > 0 && cmp(&v[2 * (j - 1)], (int[]){a, b}) > 0) {
            v[2 * j] = v[2 * (j - 1)];
            v[2 * j + 1] = v[2 * (j - 1) + 1];
            j--;
        }
        v[2 * j] = a;
        v[2 * j + 1] = b;
    }
}

long call_through(long (*f)(long), long x) { return f(x) + 1; }
