/* stat and times: sizes, types, link counts, utimensat/futimens. */
#include "common.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void times(const char *label, const char *path, int follow) {
    struct stat st;
    int r = follow ? stat(path, &st) : lstat(path, &st);
    if (r < 0) { printf("%s: %s\n", label, errname(errno)); return; }
    printf("%s: atime=%lld.%09ld mtime=%lld.%09ld\n", label,
           (long long)st.st_atim.tv_sec, (long)st.st_atim.tv_nsec,
           (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
}

int main(int argc, char **argv) {
    const char *d = workdir(argc, argv);
    int fd = open(P(d, "f"), O_CREAT | O_RDWR, 0644);
    MUST(fd);
    MUST(write(fd, "123456789", 9));
    struct stat st, st2;
    MUST(fstat(fd, &st));
    printf("fstat: size=%ld reg=%d nlink=%lu\n", (long)st.st_size, S_ISREG(st.st_mode),
           (unsigned long)st.st_nlink);
    MUST(stat(P(d, "f"), &st2));
    printf("same inode: %d, same dev: %d\n", st.st_ino == st2.st_ino, st.st_dev == st2.st_dev);
    MUST(stat(d, &st));
    printf("dir: isdir=%d\n", S_ISDIR(st.st_mode));
    REPORT("stat missing", stat(P(d, "missing"), &st));
    REPORT("stat through file", stat(P(d, "f/x"), &st));

    struct timespec ts[2] = {{1000000000, 123456789}, {1234567890, 987654321}};
    REPORT("futimens", futimens(fd, ts));
    times("after futimens", P(d, "f"), 1);
    /* UTIME_OMIT and UTIME_NOW are not used: Debian's wasi-libc build
     * (0.0~git20221206) rejects its own header's values with EINVAL. */
    struct timespec ts2[2] = {{86400, 0}, {1234567890, 987654321}};
    REPORT("utimensat", utimensat(AT_FDCWD, P(d, "f"), ts2, 0));
    times("after utimensat", P(d, "f"), 1);
    MUST(symlink("f", P(d, "l")));
    struct timespec ts3[2] = {{5, 0}, {6, 0}};
    REPORT("utimensat nofollow", utimensat(AT_FDCWD, P(d, "l"), ts3, AT_SYMLINK_NOFOLLOW));
    times("link itself", P(d, "l"), 0);
    times("target unchanged", P(d, "f"), 1);
    /* Setting times to "now" is not tested: Debian's wasi-libc sends
     * futimens(fd, NULL) as explicit zero times. */
    /* Writing moves mtime forward from an old value. */
    MUST(futimens(fd, ts));
    MUST(write(fd, "more", 4));
    MUST(fstat(fd, &st));
    printf("write updated mtime: %d, size=%ld\n", st.st_mtim.tv_sec > 1234567890, (long)st.st_size);
    MUST(link(P(d, "f"), P(d, "g")));
    MUST(fstat(fd, &st));
    printf("nlink after link: %lu\n", (unsigned long)st.st_nlink);
    REPORT("access existing", access(P(d, "f"), F_OK));
    REPORT("access missing", access(P(d, "zz"), F_OK));
    close(fd);
    return 0;
}
