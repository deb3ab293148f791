/* Renaming, unlinking, hard and symbolic links. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) { fprintf(stderr, "fopen %s failed\n", path); exit(98); }
    fputs(text, f);
    fclose(f);
}

static void show(const char *what, const char *path) {
    char buf[128] = {0};
    FILE *f = fopen(path, "r");
    if (!f) { printf("%s: missing (%s)\n", what, errname(errno)); return; }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    printf("%s: %zu '%s'\n", what, n, buf);
}

int main(int argc, char **argv) {
    const char *d = workdir(argc, argv);
    put(P(d, "a"), "alpha");
    put(P(d, "b"), "beta");
    MUST(mkdir(P(d, "sub"), 0755));

    REPORT("rename a -> c", rename(P(d, "a"), P(d, "c")));
    show("c", P(d, "c"));
    show("a", P(d, "a"));
    REPORT("rename c over b", rename(P(d, "c"), P(d, "b")));
    show("b", P(d, "b"));
    REPORT("rename into sub", rename(P(d, "b"), P(d, "sub/b2")));
    show("sub/b2", P(d, "sub/b2"));
    REPORT("rename missing", rename(P(d, "nope"), P(d, "x")));
    put(P(d, "f"), "file");
    REPORT("rename file over dir", rename(P(d, "f"), P(d, "sub")));
    MUST(mkdir(P(d, "emptydir"), 0755));
    REPORT("rename dir over file", rename(P(d, "emptydir"), P(d, "f")));
    REPORT("rename dir", rename(P(d, "emptydir"), P(d, "moved")));

    REPORT("link", link(P(d, "f"), P(d, "f.hard")));
    struct stat st;
    MUST(stat(P(d, "f"), &st));
    printf("nlink: %lu\n", (unsigned long)st.st_nlink);
    REPORT("link existing", link(P(d, "f"), P(d, "f.hard")));
    REPORT("symlink", symlink("f", P(d, "f.sym")));
    REPORT("symlink dangling", symlink("does-not-exist", P(d, "dangling")));
    char target[64] = {0};
    ssize_t n = readlink(P(d, "f.sym"), target, sizeof target - 1);
    printf("readlink: %zd '%s'\n", n, n > 0 ? target : "");
    REPORT("readlink of a file", readlink(P(d, "f"), target, sizeof target));
    show("via symlink", P(d, "f.sym"));
    show("via dangling", P(d, "dangling"));
    MUST(lstat(P(d, "f.sym"), &st));
    printf("lstat symlink: islnk=%d\n", S_ISLNK(st.st_mode));
    MUST(stat(P(d, "f.sym"), &st));
    printf("stat symlink: isreg=%d size=%ld\n", S_ISREG(st.st_mode), (long)st.st_size);

    REPORT("unlink f", unlink(P(d, "f")));
    show("f.hard after unlink", P(d, "f.hard"));
    show("f.sym after unlink", P(d, "f.sym"));
    REPORT("unlink f again", unlink(P(d, "f")));
    REPORT("unlink dir", unlink(P(d, "sub")));
    REPORT("unlink symlink", unlink(P(d, "dangling")));
    REPORT("rmdir file", rmdir(P(d, "f.hard")));
    REPORT("remove file", remove(P(d, "f.hard")));
    REPORT("remove dir", remove(P(d, "moved")));
    /* An open file survives its unlinking. */
    put(P(d, "tmp"), "still here");
    int fd = open(P(d, "tmp"), O_RDONLY);
    MUST(fd);
    MUST(unlink(P(d, "tmp")));
    char buf[32] = {0};
    printf("read unlinked: %zd '%s'\n", read(fd, buf, sizeof buf - 1), buf);
    close(fd);
    return 0;
}
