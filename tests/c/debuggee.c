/* A module a debugger looks into (tests/test_debuggers.py), with debuggee_caller.c: the tests
   find the lines they expect by the markers in the comments. */
int ll_debuggee_total;

int ll_debuggee_scale(int x)
{
    int scaled = x * 3; /* scale: first line */
    ll_debuggee_total += scaled;
    return scaled + 1;
}

int ll_debuggee_spin(long rounds)
{
    long acc = 0;
    for (long i = 0; i < rounds; i++)
        acc = acc * 31 + (i ^ ll_debuggee_total); /* spin: the loop */
    return (int)(acc & 0xff);
}
