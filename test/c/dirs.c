/* Directories: mkdir, readdir (sorted), rewinddir, rmdir, nesting. */
#include "common.h"
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static int cmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void list(const char *label, const char *path) {
    DIR *dir = opendir(path);
    if (!dir) { printf("%s: opendir %s\n", label, errname(errno)); return; }
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dir)) && n < 512) {
        char type = e->d_type == DT_DIR ? 'd' : e->d_type == DT_REG ? 'f'
                  : e->d_type == DT_LNK ? 'l' : '?';
        char *s = malloc(strlen(e->d_name) + 3);
        sprintf(s, "%s:%c", e->d_name, type);
        names[n++] = s;
    }
    /* rewinddir lists the same entries again. */
    rewinddir(dir);
    int again = 0;
    while (readdir(dir)) again++;
    closedir(dir);
    qsort(names, n, sizeof names[0], cmp);
    printf("%s (%d entries, again %d):", label, n, again);
    for (int i = 0; i < n; i++) { printf(" %s", names[i]); free(names[i]); }
    printf("\n");
}

int main(int argc, char **argv) {
    const char *d = workdir(argc, argv);
    REPORT("mkdir a", mkdir(P(d, "a"), 0755));
    REPORT("mkdir a again", mkdir(P(d, "a"), 0755));
    REPORT("mkdir a/b", mkdir(P(d, "a/b"), 0755));
    REPORT("mkdir a/b/c/", mkdir(P(d, "a/b/c/"), 0755));
    REPORT("mkdir missing parent", mkdir(P(d, "x/y"), 0755));
    for (int i = 0; i < 150; i++) {
        char name[64];
        snprintf(name, sizeof name, "a/file-with-a-rather-long-name-%03d", i);
        FILE *f = fopen(P(d, name), "w");
        if (!f) return 98;
        fclose(f);
    }
    MUST(symlink("b", P(d, "a/link")));
    list("a/b", P(d, "a/b"));
    list("a/b/c", P(d, "a/b/c"));
    list("a", P(d, "a"));
    list("missing", P(d, "nope"));
    list("file", P(d, "a/file-with-a-rather-long-name-000"));
    REPORT("rmdir non-empty", rmdir(P(d, "a/b")));
    REPORT("rmdir a/b/c", rmdir(P(d, "a/b/c")));
    REPORT("rmdir a/b", rmdir(P(d, "a/b")));
    REPORT("rmdir missing", rmdir(P(d, "a/b")));
    REPORT("rmdir symlink", rmdir(P(d, "a/link")));
    /* Walk a directory through a descriptor, with openat and fstatat. */
    int dfd = open(P(d, "a"), O_RDONLY | O_DIRECTORY);
    MUST(dfd);
    struct stat st;
    REPORT("fstatat", fstatat(dfd, "file-with-a-rather-long-name-042", &st, 0));
    printf("is regular: %d\n", S_ISREG(st.st_mode));
    int fd = openat(dfd, "new-via-openat", O_CREAT | O_WRONLY, 0644);
    MUST(fd);
    MUST(write(fd, "x", 1));
    close(fd);
    REPORT("mkdirat", mkdirat(dfd, "made-by-mkdirat", 0755));
    REPORT("unlinkat dir", unlinkat(dfd, "made-by-mkdirat", AT_REMOVEDIR));
    for (int i = 0; i < 150; i += 2) {
        char name[64];
        snprintf(name, sizeof name, "file-with-a-rather-long-name-%03d", i);
        MUST(unlinkat(dfd, name, 0));
    }
    close(dfd);
    list("a after unlinks", P(d, "a"));
    REPORT("open dir O_DIRECTORY on file",
           open(P(d, "a/new-via-openat"), O_RDONLY | O_DIRECTORY));
    REPORT("open dir for writing", open(P(d, "a"), O_WRONLY));
    return 0;
}
