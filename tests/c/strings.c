/* String handling with libc: snprintf, strcpy/strcat/strchr/strrchr/strstr, memcmp, malloc/free,
 * qsort with comparator callbacks, bsearch, strtol, toupper. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct word {
    char text[24];
    int length;
    int vowels;
};

static const char *const corpus[] = {
    "linker", "relocation", "veneer", "symbol", "section", "object",
    "module", "loader", "address", "table", "branch", "offset",
};
#define NWORDS ((int)(sizeof corpus / sizeof corpus[0]))

char last_line[128];          /* bss, written by several functions */
static int lines_printed;     /* local bss */
const char separator[] = " | ";

static int count_vowels(const char *s)
{
    int n = 0;
    for (; *s; s++)
        if (strchr("aeiou", *s))
            n++;
    return n;
}

static int by_length_then_text(const void *a, const void *b)
{
    const struct word *x = a, *y = b;
    if (x->length != y->length)
        return x->length - y->length;
    return strcmp(x->text, y->text);
}

static int by_vowels_desc(const void *a, const void *b)
{
    const struct word *x = a, *y = b;
    if (x->vowels != y->vowels)
        return y->vowels - x->vowels;
    return strcmp(y->text, x->text);
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static unsigned long fnv1a(const char *s)
{
    unsigned long h = 1469598103934665603UL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211UL;
    }
    return h;
}

static void emit(const char *line)
{
    snprintf(last_line, sizeof last_line, "%s", line);
    lines_printed++;
    printf("%s\n", line);
    fflush(NULL);
}

/* A plain strlen call (the disassembly test looks at it). */
int text_length(int which)
{
    return (int)strlen(corpus[which % NWORDS]) + 1;
}

int words_sorted_checksum(int mode)
{
    struct word *w = malloc(NWORDS * sizeof *w);
    char line[128];
    unsigned checksum = 0;
    if (!w)
        return -1;
    for (int i = 0; i < NWORDS; i++) {
        snprintf(w[i].text, sizeof w[i].text, "%s", corpus[i]);
        w[i].length = (int)strlen(w[i].text);
        w[i].vowels = count_vowels(w[i].text);
    }
    qsort(w, NWORDS, sizeof *w, mode ? by_vowels_desc : by_length_then_text);
    line[0] = '\0';
    for (int i = 0; i < NWORDS; i++) {
        checksum = checksum * 31 + (unsigned)(fnv1a(w[i].text) % 1000003) + (unsigned)i;
        if (i < 5) {
            if (i)
                strcat(line, separator);
            strcat(line, w[i].text);
        }
    }
    emit(line);
    free(w);
    return (int)(checksum & 0x7fffffff);
}

int find_sorted(int key)
{
    int table[64];
    for (int i = 0; i < 64; i++)
        table[i] = (i * 37 + 11) % 101;
    qsort(table, 64, sizeof table[0], cmp_int);
    int *hit = bsearch(&key, table, 64, sizeof table[0], cmp_int);
    return hit ? (int)(hit - table) : -1;
}

int format_and_scan(int n)
{
    char buf[96], upper[96];
    int len = snprintf(buf, sizeof buf, "%d-%s-%#x-%5.2f", n, corpus[n % NWORDS], n * n, n / 8.0);
    for (int i = 0; i <= len; i++)
        upper[i] = (char)toupper((unsigned char)buf[i]);
    emit(upper);
    const char *dash = strrchr(buf, '-');
    char *end;
    long head = strtol(buf, &end, 10);
    int found = strstr(buf, "module") != NULL;
    return len * 1000 + (int)(dash - buf) * 10 + found + (int)head * 100000;
}

long text_hash(int which)
{
    char *copy = malloc(64);
    strcpy(copy, corpus[which % NWORDS]);
    strcat(copy, corpus[(which + 5) % NWORDS]);
    long h = (long)(fnv1a(copy) >> 3);
    if (memcmp(copy, "module", 6) == 0)
        h = -h;
    free(copy);
    return h;
}

int lines_emitted(void)
{
    return lines_printed * 1000 + (int)strlen(last_line);
}
