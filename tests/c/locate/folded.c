/* gcc folds a constant offset into an absolute operand: table[i - 6] reads through the
   address table - 24, which lies before .rdata, in no section. Moving the whole image is
   fine; moving sections apart cannot know where that fixup points. */

#define CONSOLE ((volatile unsigned char *)0xE0000000)

const int table[8] = {10, 20, 30, 40, 50, 60, 70, 80};
volatile int first = 6;
int data_word = 1;

int start(void) {
    int sum = data_word;
    for (int i = first; i < first + 8; i++) sum += table[i - 6];
    *CONSOLE = (unsigned char)('0' + sum % 10);
    return sum;
}
