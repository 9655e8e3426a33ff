/* A plain C module: functions, data, a callback into libc's qsort, a constructor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int primes[8] = {2, 3, 5, 7, 11, 13, 17, 19};
static int loaded_at_startup;

int add(int a, int b) { return a + b; }

long sum_primes(void) {
    long s = 0;
    for (int i = 0; i < 8; i++) s += primes[i];
    return s;
}

static int descending(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }

/* Sorts a copy of primes in descending order and returns the first element. */
int largest_prime(void) {
    int copy[8];
    memcpy(copy, primes, sizeof copy);
    qsort(copy, 8, sizeof copy[0], descending);
    return copy[0];
}

int greet(const char *who) {
    int n = printf("mathlib: hello, %s (constructor ran: %s)\n", who, loaded_at_startup ? "yes" : "no");
    fflush(stdout);
    return n;
}

__attribute__((constructor)) static void on_link(void) { loaded_at_startup = 1; }
__attribute__((destructor)) static void on_unlink(void) { puts("mathlib: destructor ran"); fflush(stdout); }
