/* Constructors and destructors of a C module (.init_array / .fini_array with priorities). */
#include <stdio.h>

int init_calls;
static int fini_calls;
static void (*observer)(int);

__attribute__((constructor(200))) static void init_early(void)
{
    init_calls = init_calls * 10 + 1;
    printf("constructor 200\n");
    fflush(NULL);
}

__attribute__((constructor)) static void init_default(void)
{
    init_calls = init_calls * 10 + 2;
    printf("constructor default\n");
    fflush(NULL);
}

__attribute__((destructor)) static void fini_default(void)
{
    fini_calls++;
    printf("destructor default\n");
    fflush(NULL);
    if (observer)
        observer(1);
}

__attribute__((destructor(200))) static void fini_early(void)
{
    fini_calls++;
    printf("destructor 200\n");
    fflush(NULL);
    if (observer)
        observer(2);
}

int get_init_calls(void)
{
    return init_calls;
}

void set_fini_observer(void (*f)(int))
{
    observer = f;
}

int get_fini_calls(void)
{
    return fini_calls;
}
