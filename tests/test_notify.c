/* ctest-labels: unit */
/* test_notify.c: messages arrive on a fake $NOTIFY_SOCKET (a path and an abstract name), and
 * the watchdog interval follows WATCHDOG_USEC / WATCHDOG_PID. */
#include "cinder/notify.h"
#include "cinder/status.h"
#include "test.h"

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int bind_dgram(const char *name, bool abstract)
{
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(name);
    memcpy(sa.sun_path + (abstract ? 1 : 0), name, len);
    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sl) < 0) {
        perror("bind");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void recv_msg(int fd, char *out, size_t cap)
{
    struct pollfd p = {fd, POLLIN, 0};
    out[0] = 0;
    if (poll(&p, 1, 2000) != 1)
        return;
    ssize_t n = recv(fd, out, cap - 1, 0);
    out[n > 0 ? n : 0] = 0;
}

static void exercise(int fd)
{
    char msg[600];
    CHECK(notify_ready() == 0);
    recv_msg(fd, msg, sizeof(msg));
    CHECK_STR(msg, "READY=1");
    CHECK(notify_watchdog() == 0);
    recv_msg(fd, msg, sizeof(msg));
    CHECK_STR(msg, "WATCHDOG=1");
    CHECK(notify_status("serving %s on port %d\nX=1", "tiny", 8080) == 0);
    recv_msg(fd, msg, sizeof(msg));
    CHECK_STR(msg, "STATUS=serving tiny on port 8080 X=1");
    CHECK(notify_stopping() == 0);
    recv_msg(fd, msg, sizeof(msg));
    CHECK_STR(msg, "STOPPING=1");
}

static void test_path_socket(void)
{
    char dir[] = "/tmp/cinder-notify-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char path[128];
    snprintf(path, sizeof(path), "%s/notify.sock", dir);
    int fd = bind_dgram(path, false);
    CHECK(fd >= 0);
    if (fd >= 0) {
        setenv("NOTIFY_SOCKET", path, 1);
        exercise(fd);
        close(fd);
    }
    unlink(path);
    rmdir(dir);
    unsetenv("NOTIFY_SOCKET");
}

static void test_abstract_socket(void)
{
    char name[64], env[66];
    snprintf(name, sizeof(name), "cinder-notify-test-%d", (int)getpid());
    int fd = bind_dgram(name, true);
    CHECK(fd >= 0);
    if (fd < 0)
        return;
    snprintf(env, sizeof(env), "@%s", name);
    setenv("NOTIFY_SOCKET", env, 1);
    exercise(fd);
    close(fd);
    unsetenv("NOTIFY_SOCKET");
}

static void test_no_socket(void)
{
    unsetenv("NOTIFY_SOCKET");
    CHECK(notify_ready() == 0);
    setenv("NOTIFY_SOCKET", "relative/path", 1);
    char err[CND_ERR_LEN] = "";
    CHECK(notify_send("READY=1", err) == CND_EINVAL);
    CHECK(strstr(err, "NOTIFY_SOCKET") != NULL);
    setenv("NOTIFY_SOCKET", "/nonexistent/dir/sock", 1);
    CHECK(notify_send("READY=1", err) == CND_EIO);
    unsetenv("NOTIFY_SOCKET");
}

static void test_watchdog_usec(void)
{
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
    CHECK(notify_watchdog_usec() == 0);
    setenv("WATCHDOG_USEC", "30000000", 1);
    CHECK(notify_watchdog_usec() == 30000000);
    char pid[32];
    snprintf(pid, sizeof(pid), "%d", (int)getpid());
    setenv("WATCHDOG_PID", pid, 1);
    CHECK(notify_watchdog_usec() == 30000000);
    snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
    setenv("WATCHDOG_PID", pid, 1);
    CHECK(notify_watchdog_usec() == 0);
    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "abc", 1);
    CHECK(notify_watchdog_usec() == 0);
    setenv("WATCHDOG_USEC", "-5", 1);
    CHECK(notify_watchdog_usec() == 0);
    unsetenv("WATCHDOG_USEC");
}

int main(void)
{
    RUN(test_path_socket);
    RUN(test_abstract_socket);
    RUN(test_no_socket);
    RUN(test_watchdog_usec);
    return test_summary();
}
