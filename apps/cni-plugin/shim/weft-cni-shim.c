/*
 * weft-cni, the executable a container runtime starts for every CNI request.
 *
 * It forwards the request (environment and stdin) to the CNI server inside weft-agent, which runs
 * the TypeScript plugin warm, and prints its answer. A Node.js process per request costs ~20 ms of
 * start-up before any work; this costs well under a millisecond. When no agent answers (not
 * running, or it fails mid-request), the request runs in a process of its own exactly as before:
 * this program execs `weft` from its own directory as `weft-cni`, stdin replayed.
 *
 * Socket: $WEFT_CNI_SOCKET, else the network config's "agentSocket" with its ".sock" replaced by
 * "-cni.sock" (one per agent, even with several in one directory), else
 * /var/run/weft/agent-cni.sock. Wire format (integers u32 little-endian):
 *   request:  "WEFTCNI1" n_env { len "KEY=VALUE" }*n_env len stdin
 *   response: "WEFTCNI1" exit_code len stdout len stderr
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

extern char **environ;

static const char MAGIC[8] = {'W', 'E', 'F', 'T', 'C', 'N', 'I', '1'};
/* The plugin refuses more than 1 MiB of config; one byte more lets it say so. */
static const size_t MAX_STDIN = (1u << 20) + 1;
/* A runtime's own timeout is minutes; a hung agent must not hold the pod forever. */
static const int REPLY_TIMEOUT_S = 240;
static const char DEFAULT_SOCKET[] = "/var/run/weft/agent-cni.sock";

struct buf {
  char *data;
  size_t len, cap;
};

static int buf_put(struct buf *b, const void *p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n) cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d) return -1;
    b->data = d;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

static int buf_u32(struct buf *b, uint32_t v) {
  unsigned char le[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, (v >> 24) & 0xff};
  return buf_put(b, le, 4);
}

static int read_stdin(struct buf *in) {
  const char *cmd = getenv("CNI_COMMAND");
  if (cmd && strcmp(cmd, "VERSION") == 0 && isatty(0)) return 0;
  char chunk[65536];
  while (in->len < MAX_STDIN) {
    ssize_t n = read(0, chunk, sizeof chunk);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EBADF ? 0 : -1;
    }
    size_t take = (size_t)n < MAX_STDIN - in->len ? (size_t)n : MAX_STDIN - in->len;
    if (buf_put(in, chunk, take) < 0) return -1;
  }
  return 0;
}

/* ---- the one config key this program needs: a top-level "agentSocket" string ---- */

struct scan {
  const char *p, *end;
};

static void skip_ws(struct scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

/* Reads a JSON string at s->p (on the opening quote) into out (NUL-terminated, ASCII escapes
 * only); out may be NULL to skip. Returns 0, or -1 when malformed or too long. */
static int scan_string(struct scan *s, char *out, size_t outcap) {
  size_t n = 0;
  if (s->p >= s->end || *s->p != '"') return -1;
  s->p++;
  while (s->p < s->end && *s->p != '"') {
    char c = *s->p++;
    if (c == '\\') {
      if (s->p >= s->end) return -1;
      char e = *s->p++;
      switch (e) {
        case 'n': c = '\n'; break;
        case 't': c = '\t'; break;
        case 'r': c = '\r'; break;
        case 'b': c = '\b'; break;
        case 'f': c = '\f'; break;
        case 'u': {
          if (s->end - s->p < 4) return -1;
          unsigned v = 0;
          for (int i = 0; i < 4; i++) {
            char h = *s->p++;
            v = v * 16 + (h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
          }
          if (v == 0 || v > 0x7f) return -1; /* a path we would decode wrongly: let the plugin decide */
          c = (char)v;
          break;
        }
        default: c = e; /* \" \\ \/ */
      }
    }
    if (out) {
      if (n + 1 >= outcap) return -1;
      out[n++] = c;
    }
  }
  if (s->p >= s->end) return -1;
  s->p++;
  if (out) out[n] = 0;
  return 0;
}

/* Skips one JSON value of any kind. */
static int skip_value(struct scan *s) {
  skip_ws(s);
  if (s->p >= s->end) return -1;
  if (*s->p == '"') return scan_string(s, NULL, 0);
  if (*s->p == '{' || *s->p == '[') {
    int depth = 0;
    while (s->p < s->end) {
      char c = *s->p;
      if (c == '"') {
        if (scan_string(s, NULL, 0) < 0) return -1;
        continue;
      }
      s->p++;
      if (c == '{' || c == '[') depth++;
      else if ((c == '}' || c == ']') && --depth == 0) return 0;
    }
    return -1;
  }
  while (s->p < s->end && *s->p != ',' && *s->p != '}' && *s->p != ']' && *s->p != ' ' && *s->p != '\n' &&
         *s->p != '\r' && *s->p != '\t')
    s->p++;
  return 0;
}

/* 1: found (into out), 0: absent, -1: not a JSON object we can read (the plugin will say why). */
static int find_agent_socket(const struct buf *conf, char *out, size_t outcap) {
  struct scan s = {conf->data, conf->data + conf->len};
  char key[64];
  skip_ws(&s);
  if (s.p >= s.end || *s.p != '{') return -1;
  s.p++;
  for (;;) {
    skip_ws(&s);
    if (s.p < s.end && *s.p == '}') return 0;
    /* A key longer than key[] is not ours: skip it. */
    const char *at = s.p;
    if (scan_string(&s, key, sizeof key) < 0) {
      s.p = at;
      if (scan_string(&s, NULL, 0) < 0) return -1;
      key[0] = 0;
    }
    skip_ws(&s);
    if (s.p >= s.end || *s.p != ':') return -1;
    s.p++;
    skip_ws(&s);
    if (strcmp(key, "agentSocket") == 0 && s.p < s.end && *s.p == '"')
      return scan_string(&s, out, outcap) == 0 ? 1 : -1;
    if (skip_value(&s) < 0) return -1;
    skip_ws(&s);
    if (s.p < s.end && *s.p == ',') {
      s.p++;
      continue;
    }
    if (s.p < s.end && *s.p == '}') return 0;
    return -1;
  }
}

static void socket_path(const struct buf *conf, char *out, size_t outcap) {
  const char *env = getenv("WEFT_CNI_SOCKET");
  char agent[PATH_MAX - 16];
  if (env && *env) {
    snprintf(out, outcap, "%s", env);
    return;
  }
  if (find_agent_socket(conf, agent, sizeof agent) == 1 && agent[0]) {
    size_t n = strlen(agent);
    if (n >= 5 && strcmp(agent + n - 5, ".sock") == 0) agent[n - 5] = 0;
    snprintf(out, outcap, "%s-cni.sock", agent);
    return;
  }
  snprintf(out, outcap, "%s", DEFAULT_SOCKET);
}

/* ---- talking to the agent ---- */

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r == 0) return -1;
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

static int read_u32(int fd, uint32_t *v) {
  unsigned char le[4];
  if (read_all(fd, le, 4) < 0) return -1;
  *v = le[0] | (le[1] << 8) | (le[2] << 16) | ((uint32_t)le[3] << 24);
  return 0;
}

/* Reads one length-prefixed block; sizes beyond what a CNI answer can be mean a broken peer. */
static int read_block(int fd, struct buf *b) {
  uint32_t n;
  if (read_u32(fd, &n) < 0 || n > (64u << 20)) return -1;
  b->data = malloc(n ? n : 1);
  if (!b->data || read_all(fd, b->data, n) < 0) return -1;
  b->len = b->cap = n;
  return 0;
}

/* Returns the plugin's exit code, or -1 when the agent did not answer (nothing was printed). */
static int forward(const char *path, const struct buf *in) {
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) return -1;
  strcpy(addr.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    close(fd);
    return -1;
  }
  struct timeval tv = {.tv_sec = REPLY_TIMEOUT_S};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);

  struct buf req = {0};
  uint32_t n_env = 0;
  for (char **e = environ; *e; e++) n_env++;
  int ok = buf_put(&req, MAGIC, sizeof MAGIC) == 0 && buf_u32(&req, n_env) == 0;
  for (char **e = environ; ok && *e; e++) {
    size_t len = strlen(*e);
    ok = buf_u32(&req, (uint32_t)len) == 0 && buf_put(&req, *e, len) == 0;
  }
  ok = ok && buf_u32(&req, (uint32_t)in->len) == 0 && buf_put(&req, in->data, in->len) == 0;
  if (!ok || write_all(fd, req.data, req.len) < 0) {
    close(fd);
    return -1;
  }
  free(req.data);
  shutdown(fd, SHUT_WR);

  char magic[8];
  uint32_t code;
  struct buf out = {0}, err = {0};
  if (read_all(fd, magic, sizeof magic) < 0 || memcmp(magic, MAGIC, sizeof MAGIC) != 0 || read_u32(fd, &code) < 0 ||
      read_block(fd, &out) < 0 || read_block(fd, &err) < 0) {
    close(fd);
    return -1;
  }
  close(fd);
  write_all(1, out.data, out.len);
  write_all(2, err.data, err.len);
  return (int)(code & 0xff);
}

/* No agent: run the plugin in a process of its own, stdin replayed from memory. */
static void run_locally(const struct buf *in) {
  char self[PATH_MAX], target[PATH_MAX + 8];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0) {
    perror("weft-cni: /proc/self/exe");
    exit(1);
  }
  self[n] = 0;
  char *slash = strrchr(self, '/');
  *slash = 0;
  snprintf(target, sizeof target, "%s/weft", self);
  int fd = memfd_create("weft-cni-stdin", MFD_CLOEXEC);
  if (fd < 0 || write_all(fd, in->data, in->len) < 0 || lseek(fd, 0, SEEK_SET) < 0 || dup2(fd, 0) < 0) {
    perror("weft-cni: replaying stdin");
    exit(1);
  }
  /* The multi-call binary takes its program from here, then removes it from its environment. */
  setenv("WEFT_PROGRAM", "weft-cni", 1);
  char *argv[] = {"weft-cni", NULL};
  execv(target, argv);
  fprintf(stderr, "weft-cni: cannot run %s: %s\n", target, strerror(errno));
  exit(1);
}

int main(void) {
  struct buf in = {0};
  if (read_stdin(&in) < 0) {
    perror("weft-cni: reading stdin");
    return 1;
  }
  if (!in.data) in.data = (char *)"";
  char path[PATH_MAX];
  socket_path(&in, path, sizeof path);
  int code = forward(path, &in);
  if (code >= 0) return code;
  run_locally(&in);
  return 1;
}
