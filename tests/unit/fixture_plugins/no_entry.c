/* Test plugin: a shared object without the entry symbol. */
int tlab_not_the_entry(void);
__attribute__((visibility("default"))) int tlab_not_the_entry(void) {
    return 42;
}
