/* The pod sandbox's process for ferrolb's test cluster (the role of registry.k8s.io/pause):
 * it holds the pod's namespaces, reaps orphans, and exits on SIGINT or SIGTERM.
 * Built static by tests/setup/images.sh: gcc -static -O2 -o pause pause.c */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void quit(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction quit_action = {.sa_handler = quit};
  struct sigaction reap_action = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
  if (sigaction(SIGINT, &quit_action, NULL) < 0 || sigaction(SIGTERM, &quit_action, NULL) < 0 ||
      sigaction(SIGCHLD, &reap_action, NULL) < 0)
    return 1;
  for (;;) pause();
}
