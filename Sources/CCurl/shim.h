#ifndef SLUICE_CCURL_SHIM_H
#define SLUICE_CCURL_SHIM_H

#include <curl/curl.h>

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

#endif
