/* Defines what pair_b.c leaves weak and undefined. */
int maybe_value = 77;

int maybe(void)
{
    return 42;
}
