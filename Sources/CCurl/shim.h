#ifndef SLUICE_CCURL_SHIM_H
#define SLUICE_CCURL_SHIM_H

#include <curl/curl.h>
#include <errno.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <time.h>

// curl_easy_setopt, curl_multi_setopt and curl_easy_getinfo are C variadic functions, which Swift
// cannot call. These typed wrappers fix the argument type per option kind; the caller picks the one
// that matches the option's documented type (long, char *, void *, callback).

typedef size_t (*sluice_write_callback)(char *data, size_t size, size_t count, void *context);

static inline CURLcode sluice_easy_setopt_long(CURL *handle, CURLoption option, long value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sluice_easy_setopt_string(CURL *handle, CURLoption option, const char *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sluice_easy_setopt_pointer(CURL *handle, CURLoption option, void *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sluice_easy_setopt_slist(CURL *handle, CURLoption option, struct curl_slist *value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLcode sluice_easy_setopt_write_callback(CURL *handle, CURLoption option, sluice_write_callback value) {
    return curl_easy_setopt(handle, option, value);
}

static inline CURLMcode sluice_multi_setopt_long(CURLM *multi, CURLMoption option, long value) {
    return curl_multi_setopt(multi, option, value);
}

static inline CURLcode sluice_easy_getinfo_long(CURL *handle, CURLINFO info, long *value) {
    return curl_easy_getinfo(handle, info, value);
}

static inline CURLcode sluice_easy_getinfo_pointer(CURL *handle, CURLINFO info, void **value) {
    return curl_easy_getinfo(handle, info, value);
}

// CURL_GLOBAL_DEFAULT is a macro built from other macros, which Swift does not import.
static inline CURLcode sluice_global_init(void) {
    return curl_global_init(CURL_GLOBAL_DEFAULT);
}

// CURLMsg's `data` is a union; reading the CURLcode through C keeps the Swift side free of union
// layout assumptions.
static inline CURLcode sluice_message_result(const CURLMsg *message) {
    return message->data.result;
}

// --- curl_multi_socket_action over epoll -------------------------------------------------------------
// curl_multi_perform walks every easy handle on each call and curl_multi_poll rebuilds a pollfd set
// of every socket, so with thousands of streams the load generator spends its time in O(streams)
// scans. With the socket interface curl tells us which sockets to watch (epoll) and we tell it which
// are ready: the work per wake-up is the number of ready sockets. The callbacks are C so that no
// Swift closure has to cross into curl for bookkeeping.

static inline int64_t sluice_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

// CURLMOPT_SOCKETFUNCTION: mirror curl's interest in `socket` into the epoll set passed as `userp`.
static inline int sluice_epoll_socket_callback(CURL *easy, curl_socket_t socket, int what, void *userp, void *socketp) {
    (void)easy;
    (void)socketp;
    int epoll = (int)(intptr_t)userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(epoll, EPOLL_CTL_DEL, socket, NULL);
        return 0;
    }
    struct epoll_event event = {0};
    event.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    event.data.fd = socket;
    if (epoll_ctl(epoll, EPOLL_CTL_MOD, socket, &event) != 0 && errno == ENOENT) {
        epoll_ctl(epoll, EPOLL_CTL_ADD, socket, &event);
    }
    return 0;
}

// CURLMOPT_TIMERFUNCTION: curl wants a timeout action at now + timeout_ms (-1: none); kept as an
// absolute CLOCK_MONOTONIC deadline in the int64_t that `userp` points to.
static inline int sluice_timer_callback(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    int64_t *deadline = (int64_t *)userp;
    *deadline = timeout_ms < 0 ? -1 : sluice_monotonic_ns() + (int64_t)timeout_ms * 1000000;
    return 0;
}

/// Makes `multi` report its sockets into `epoll` and its timer into `*deadline`.
static inline CURLMcode sluice_multi_use_epoll(CURLM *multi, int epoll, int64_t *deadline) {
    *deadline = -1;
    CURLMcode code = curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, sluice_epoll_socket_callback);
    if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, (void *)(intptr_t)epoll);
    if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, sluice_timer_callback);
    if (code == CURLM_OK) code = curl_multi_setopt(multi, CURLMOPT_TIMERDATA, (void *)deadline);
    return code;
}

/// Waits up to `wait_ms` for ready sockets, hands each to curl, then fires curl's timer if it is due.
/// Transfers' write callbacks run inside. Returns the number of ready sockets (-1: epoll_wait failed).
static inline int sluice_epoll_drive(CURLM *multi, int epoll, int wait_ms, int64_t *deadline) {
    struct epoll_event events[512];
    int ready = epoll_wait(epoll, events, 512, wait_ms);
    int running = 0;
    for (int index = 0; index < ready; index++) {
        uint32_t flags = events[index].events;
        int mask = ((flags & EPOLLIN) ? CURL_CSELECT_IN : 0) | ((flags & EPOLLOUT) ? CURL_CSELECT_OUT : 0)
            | ((flags & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(multi, events[index].data.fd, mask, &running);
    }
    if (*deadline >= 0 && sluice_monotonic_ns() >= *deadline) {
        *deadline = -1;
        curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    return ready;
}

#endif
