/* Just enough of NuttX for symtab.c */
#define FAR
