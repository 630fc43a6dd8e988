// Linked into the binaries of the ThreadSanitizer build that use librdkafka (ORDER_PIPELINE_TSAN).
//
// librdkafka 2.0 runs on C11 threads: thrd_create, mtx_lock, cnd_wait, ... from glibc, which
// calls its pthread functions internally, past ThreadSanitizer's interceptors (g++ 12's TSan
// has none for C11 threads). Its threads then have no TSan state (the first malloc in one
// crashes) and its locks order nothing TSan can see. These definitions, found before glibc's
// by the dynamic linker, forward each call to the intercepted pthread function, as glibc does
// (glibc's mtx_t, cnd_t and once_flag wrap the pthread types), so TSan sees librdkafka's
// threads and locks.

#include <pthread.h>
#include <threads.h>

#include <cerrno>
#include <cstdint>

static_assert(sizeof(mtx_t) >= sizeof(pthread_mutex_t) && sizeof(cnd_t) >= sizeof(pthread_cond_t) &&
              sizeof(once_flag) == sizeof(pthread_once_t) && sizeof(thrd_t) == sizeof(pthread_t));

namespace {

int from_pthread(int rc) {
  switch (rc) {
    case 0:
      return thrd_success;
    case EBUSY:
      return thrd_busy;
    case ETIMEDOUT:
      return thrd_timedout;
    case ENOMEM:
    case EAGAIN:
      return thrd_nomem;
    default:
      return thrd_error;
  }
}

struct start {
  thrd_start_t func;
  void* arg;
};

void* run(void* p) {
  auto s = *static_cast<start*>(p);
  delete static_cast<start*>(p);
  return reinterpret_cast<void*>(static_cast<std::intptr_t>(s.func(s.arg)));
}

pthread_mutex_t* native(mtx_t* m) {
  return reinterpret_cast<pthread_mutex_t*>(m);
}
pthread_cond_t* native(cnd_t* c) {
  return reinterpret_cast<pthread_cond_t*>(c);
}

}  // namespace

extern "C" {

int thrd_create(thrd_t* thr, thrd_start_t func, void* arg) {
  auto* s = new start{func, arg};
  int rc = pthread_create(thr, nullptr, run, s);
  if (rc != 0)
    delete s;
  return from_pthread(rc);
}

int thrd_join(thrd_t thr, int* res) {
  void* out = nullptr;
  int rc = pthread_join(thr, &out);
  if (rc == 0 && res)
    *res = static_cast<int>(reinterpret_cast<std::intptr_t>(out));
  return from_pthread(rc);
}

int thrd_detach(thrd_t thr) {
  return from_pthread(pthread_detach(thr));
}

int mtx_init(mtx_t* m, int type) {
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  if (type & mtx_recursive)
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
  int rc = pthread_mutex_init(native(m), &attr);
  pthread_mutexattr_destroy(&attr);
  return from_pthread(rc);
}

int mtx_lock(mtx_t* m) {
  return from_pthread(pthread_mutex_lock(native(m)));
}

int mtx_trylock(mtx_t* m) {
  return from_pthread(pthread_mutex_trylock(native(m)));
}

int mtx_timedlock(mtx_t* __restrict m, const struct timespec* __restrict until) {
  return from_pthread(pthread_mutex_timedlock(native(m), until));
}

int mtx_unlock(mtx_t* m) {
  return from_pthread(pthread_mutex_unlock(native(m)));
}

void mtx_destroy(mtx_t* m) {
  pthread_mutex_destroy(native(m));
}

int cnd_init(cnd_t* c) {
  return from_pthread(pthread_cond_init(native(c), nullptr));
}

int cnd_signal(cnd_t* c) {
  return from_pthread(pthread_cond_signal(native(c)));
}

int cnd_broadcast(cnd_t* c) {
  return from_pthread(pthread_cond_broadcast(native(c)));
}

int cnd_wait(cnd_t* c, mtx_t* m) {
  return from_pthread(pthread_cond_wait(native(c), native(m)));
}

int cnd_timedwait(cnd_t* __restrict c, mtx_t* __restrict m,
                  const struct timespec* __restrict until) {
  return from_pthread(pthread_cond_timedwait(native(c), native(m), until));
}

void cnd_destroy(cnd_t* c) {
  pthread_cond_destroy(native(c));
}

void call_once(once_flag* flag, void (*func)(void)) {
  pthread_once(reinterpret_cast<pthread_once_t*>(flag), func);
}

}  // extern "C"
