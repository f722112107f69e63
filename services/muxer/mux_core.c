/* mux_core.c -- opening the input through the caller's callbacks, the
 * shared timestamp and audio-decoding helpers, and mx_make_outputs. */
#include "mux_core.h"
#include "mux_out.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libswresample/swresample.h>

int mx_out_pb_open(AVIOContext **pb, const char *path, mx_out_file *live)
{
    if (live == NULL)
        return avio_open(pb, path, AVIO_FLAG_WRITE);
    *pb = mx_out_avio(live);
    return *pb != NULL ? 0 : AVERROR(ENOMEM);
}

void mx_out_pb_close(AVIOContext **pb, mx_out_file *live)
{
    if (live == NULL) {
        avio_closep(pb);
        return;
    }
    mx_out_avio_free(pb);
    mx_out_finish(live);
}

void mx_set(mx_output *o, mx_out_state state, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    o->state = state;
    vsnprintf(o->reason, sizeof o->reason, fmt, ap);
    va_end(ap);
}

int mx_src_open(mx_src *s, const mx_input *in, char *err, size_t errlen)
{
    uint8_t *buf = NULL;
    int ret;

    memset(s, 0, sizeof *s);
    s->v = s->a = -1;
    if (in->seek(in->opaque, 0, SEEK_SET) < 0) {
        snprintf(err, errlen, "seek to the start of the input failed");
        return -1;
    }
    buf = av_malloc(MX_AVIO_BUFFER_BYTES);
    if (buf)
        s->avio =
            avio_alloc_context(buf, MX_AVIO_BUFFER_BYTES, 0, in->opaque, in->read, NULL, in->seek);
    s->fmt = avformat_alloc_context();
    if (!buf || !s->avio || !s->fmt) {
        if (!s->avio)
            av_free(buf);
        snprintf(err, errlen, "avio_alloc_context: out of memory");
        goto fail;
    }
    s->fmt->pb = s->avio;
    if ((ret = avformat_open_input(&s->fmt, NULL, NULL, NULL)) < 0) {
        snprintf(err, errlen, "avformat_open_input: %s", av_err2str(ret));
        goto fail; /* s->fmt was freed by avformat_open_input */
    }
    if ((ret = avformat_find_stream_info(s->fmt, NULL)) < 0) {
        snprintf(err, errlen, "avformat_find_stream_info: %s", av_err2str(ret));
        goto fail;
    }
    s->v = av_find_best_stream(s->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    s->a = av_find_best_stream(s->fmt, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (s->v >= 0 && s->fmt->streams[s->v]->codecpar->width <= 0)
        s->v = -1; /* a track entry without a single decodable frame */
    if (s->a >= 0 && s->fmt->streams[s->a]->codecpar->sample_rate <= 0)
        s->a = -1;
    if (s->v < 0 && s->a < 0) {
        snprintf(err, errlen, "no decodable audio or video stream in the input (%s)",
                 s->fmt->iformat->name);
        goto fail;
    }
    s->start_us = s->fmt->start_time != AV_NOPTS_VALUE ? s->fmt->start_time : 0;
    return 0;
fail:
    mx_src_close(s);
    return -1;
}

void mx_src_close(mx_src *s)
{
    avformat_close_input(&s->fmt); /* leaves the custom AVIOContext to us */
    if (s->avio) {
        av_freep(&s->avio->buffer);
        avio_context_free(&s->avio);
    }
}

void mx_ts_fix(mx_ts *t, AVPacket *pkt, const AVStream *ist, const AVStream *ost, int64_t start_us,
               bool strict)
{
    int64_t off = av_rescale_q(start_us, AV_TIME_BASE_Q, ost->time_base);

    if (pkt->dts == AV_NOPTS_VALUE)
        pkt->dts = pkt->pts;
    if (pkt->pts == AV_NOPTS_VALUE)
        pkt->pts = pkt->dts;
    if (pkt->dts == AV_NOPTS_VALUE) /* neither: continue from the previous packet */
        pkt->pts = pkt->dts = t->last_dts == INT64_MIN ? 0 : t->last_dts;
    else {
        av_packet_rescale_ts(pkt, ist->time_base, ost->time_base);
        pkt->pts -= off;
        pkt->dts -= off;
    }
    /* MediaRecorder output may repeat or step back a timestamp; muxers refuse it. */
    if (t->last_dts != INT64_MIN && pkt->dts <= t->last_dts)
        pkt->dts = strict ? t->last_dts + 1 : FFMAX(pkt->dts, t->last_dts);
    if (pkt->pts < pkt->dts)
        pkt->pts = pkt->dts;
    t->last_dts = pkt->dts;
    int64_t end = av_rescale_q(pkt->pts + pkt->duration, ost->time_base, AV_TIME_BASE_Q);
    t->end_us = FFMAX(t->end_us, end);
}

int mx_adec_open(mx_adec *d, const AVStream *st, int out_fmt, int out_rate, char *err,
                 size_t errlen)
{
    const AVCodec *codec = avcodec_find_decoder(st->codecpar->codec_id);
    int ret;

    memset(d, 0, sizeof *d);
    d->first_pts = INT64_MIN;
    d->out_fmt = out_fmt;
    d->out_rate = out_rate;
    if (!codec) {
        snprintf(err, errlen, "no decoder for %s audio", avcodec_get_name(st->codecpar->codec_id));
        return -1;
    }
    if (!(d->dec = avcodec_alloc_context3(codec)) || !(d->frame = av_frame_alloc())) {
        snprintf(err, errlen, "avcodec_alloc_context3: out of memory");
        goto fail;
    }
    if ((ret = avcodec_parameters_to_context(d->dec, st->codecpar)) < 0 ||
        (ret = avcodec_open2(d->dec, codec, NULL)) < 0) {
        snprintf(err, errlen, "avcodec_open2 (%s decoder): %s", codec->name, av_err2str(ret));
        goto fail;
    }
    d->dec->pkt_timebase = st->time_base;
    d->channels = d->dec->ch_layout.nb_channels;
    if (d->channels <= 0) {
        snprintf(err, errlen, "%s audio without a channel count", codec->name);
        goto fail;
    }
    return 0;
fail:
    mx_adec_close(d);
    return -1;
}

/* The resampler is made for the first decoded frame: Firefox labels Opus
 * 44.1 kHz although the decoder produces 48 kHz; trust the frames. */
static int adec_init_swr(mx_adec *d, const AVFrame *f, char *err, size_t errlen)
{
    AVChannelLayout in = {0}, out = {0};
    int ret;

    if (f->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC)
        av_channel_layout_default(&in, f->ch_layout.nb_channels);
    else
        av_channel_layout_copy(&in, &f->ch_layout);
    av_channel_layout_default(&out, d->channels);
    ret = swr_alloc_set_opts2(&d->swr, &out, d->out_fmt, d->out_rate, &in, f->format,
                              f->sample_rate, 0, NULL);
    if (ret >= 0)
        ret = swr_init(d->swr);
    av_channel_layout_uninit(&in);
    av_channel_layout_uninit(&out);
    if (ret < 0)
        snprintf(err, errlen, "swr_init (%d Hz %s -> %d Hz): %s", f->sample_rate,
                 av_get_sample_fmt_name(f->format), d->out_rate, av_err2str(ret));
    return ret < 0 ? -1 : 0;
}

/* Converts f (NULL: flush the resampler) and hands the result to sink.
 * The number of samples converted, or -1. */
static int adec_convert(mx_adec *d, const AVFrame *f, mx_samples_fn sink, void *opaque, char *err,
                        size_t errlen)
{
    int in_n = f ? f->nb_samples : 0;
    int need = swr_get_out_samples(d->swr, in_n);
    int n;

    if (need > d->out_cap) {
        if (d->out)
            av_freep(&d->out[0]);
        av_freep(&d->out);
        d->out_cap = 0;
        if (av_samples_alloc_array_and_samples(&d->out, NULL, d->channels, need, d->out_fmt, 0) <
            0) {
            snprintf(err, errlen, "av_samples_alloc: out of memory");
            return -1;
        }
        d->out_cap = need;
    }
    n = swr_convert(d->swr, d->out, d->out_cap, f ? (const uint8_t **)f->extended_data : NULL,
                    in_n);
    if (n < 0) {
        snprintf(err, errlen, "swr_convert: %s", av_err2str(n));
        return -1;
    }
    if (n > 0 && sink(opaque, d->out, n) < 0) {
        snprintf(err, errlen, "writing the converted audio failed");
        return -1;
    }
    return n;
}

int mx_adec_send(mx_adec *d, const AVPacket *pkt, mx_samples_fn sink, void *opaque, char *err,
                 size_t errlen)
{
    int ret = avcodec_send_packet(d->dec, pkt);

    if (ret == AVERROR_INVALIDDATA)
        return 0; /* one damaged packet: skip it, as players do */
    if (ret < 0) {
        snprintf(err, errlen, "avcodec_send_packet (%s): %s", d->dec->codec->name, av_err2str(ret));
        return -1;
    }
    while ((ret = avcodec_receive_frame(d->dec, d->frame)) >= 0) {
        if (!d->swr && adec_init_swr(d, d->frame, err, errlen) < 0)
            return -1;
        if (d->first_pts == INT64_MIN && d->frame->pts != AV_NOPTS_VALUE)
            d->first_pts =
                av_rescale_q(d->frame->pts, d->dec->pkt_timebase, (AVRational){1, d->out_rate});
        ret = adec_convert(d, d->frame, sink, opaque, err, errlen);
        av_frame_unref(d->frame);
        if (ret < 0)
            return -1;
    }
    if (ret != AVERROR(EAGAIN) && ret != AVERROR_EOF && ret != AVERROR_INVALIDDATA) {
        snprintf(err, errlen, "avcodec_receive_frame (%s): %s", d->dec->codec->name,
                 av_err2str(ret));
        return -1;
    }
    ret = 0;
    while (!pkt && d->swr && (ret = adec_convert(d, NULL, sink, opaque, err, errlen)) > 0)
        ;
    return ret < 0 ? -1 : 0;
}

void mx_adec_close(mx_adec *d)
{
    avcodec_free_context(&d->dec);
    swr_free(&d->swr);
    av_frame_free(&d->frame);
    if (d->out)
        av_freep(&d->out[0]);
    av_freep(&d->out);
}

static void fail_all(mx_result *res, const char *why)
{
    mx_set(&res->webm, MX_OUT_FAILED, "%s", why);
    mx_set(&res->mp4, MX_OUT_FAILED, "%s", why);
    mx_set(&res->wav, MX_OUT_FAILED, "%s", why);
}

/* Opens the input once to decide whether it is media at all: a header that
 * parses but no packet behind it (a truncated upload) counts as unreadable. */
static int probe(const mx_input *in, mx_result *res, char *err, size_t errlen)
{
    mx_src s;
    AVPacket *pkt = av_packet_alloc();
    int ret = -1;

    if (!pkt) {
        snprintf(err, errlen, "av_packet_alloc: out of memory");
        return -1;
    }
    if (mx_src_open(&s, in, err, errlen) < 0)
        goto out;
    if ((ret = av_read_frame(s.fmt, pkt)) < 0) {
        snprintf(err, errlen, "av_read_frame (first packet): %s", av_err2str(ret));
        ret = -1;
        goto out;
    }
    res->duration_us = s.fmt->duration != AV_NOPTS_VALUE ? s.fmt->duration : 0;
    ret = 0;
out:
    av_packet_free(&pkt);
    mx_src_close(&s);
    return ret;
}

#define MX_PASSES 3
static const char *const pass_names[MX_PASSES] = {"WebM", "MP4", "WAV"};

static void run_pass(int k, const mx_input *in, const char *path, const mx_options *opt,
                     mx_output *o)
{
    if (k == 0)
        mx_write_webm(in, path, opt, o);
    else if (k == 1)
        mx_write_mp4(in, path, opt, o);
    else
        mx_write_wav(in, path, opt, o);
}

/* One output's pass on its own thread, with its own reader. */
typedef struct pass_thread {
    int k;
    mx_input in;
    const char *path;
    const mx_options *opt;
    mx_output *out;
    pthread_t thread;
    bool started;
    pthread_mutex_t *mu;
    pthread_cond_t *cv;
    int *running;
} pass_thread;

static void *pass_main(void *arg)
{
    pass_thread *p = arg;
    run_pass(p->k, &p->in, p->path, p->opt, p->out);
    p->in.release(p->in.opaque); /* now: a live reader pins what it has not read */
    p->in.opaque = NULL;
    pthread_mutex_lock(p->mu);
    (*p->running)--;
    pthread_cond_signal(p->cv);
    pthread_mutex_unlock(p->mu);
    return NULL;
}

/* Waits for the passes, calling in->tick about once a second. */
static void wait_passes(const mx_input *in, pthread_mutex_t *mu, pthread_cond_t *cv, int *running)
{
    pthread_mutex_lock(mu);
    while (*running > 0) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 1;
        if (pthread_cond_timedwait(cv, mu, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(mu);
            in->tick(in->opaque);
            pthread_mutex_lock(mu);
        }
    }
    pthread_mutex_unlock(mu);
}

/* The passes at once: the AAC encoder of the MP4 pass is the long pole
 * (about 30x real time on one core), and the other passes and every read
 * from the store overlap with it. 0, or -1 when no thread could be started
 * (nothing written: the caller runs the passes one after another). */
static int run_parallel(const mx_input *in, const char *const paths[MX_PASSES],
                        const mx_options *opt, mx_output *const outs[MX_PASSES])
{
    pass_thread t[MX_PASSES] = {0};
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    int running = 0, started = 0;
    for (int k = 0; k < MX_PASSES; k++) {
        if (!paths[k])
            continue;
        t[k] = (pass_thread){k, *in, paths[k], opt, outs[k], 0, false, &mu, &cv, &running};
        t[k].in.opaque = in->another(in->opaque);
        if (t[k].in.opaque == NULL)
            continue;
        pthread_mutex_lock(&mu);
        running++;
        pthread_mutex_unlock(&mu);
        t[k].started = pthread_create(&t[k].thread, NULL, pass_main, &t[k]) == 0;
        if (!t[k].started) {
            pthread_mutex_lock(&mu);
            running--;
            pthread_mutex_unlock(&mu);
        }
        started += t[k].started;
    }
    wait_passes(in, &mu, &cv, &running);
    for (int k = 0; k < MX_PASSES; k++) {
        if (t[k].started)
            pthread_join(t[k].thread, NULL);
        else if (paths[k] && started > 0) /* its own reader or thread failed: run it here */
            run_pass(k, in, paths[k], opt, outs[k]);
        if (t[k].in.opaque)
            in->release(t[k].in.opaque);
    }
    return started > 0 ? 0 : -1;
}

int mx_make_outputs(const mx_input *in, const char *webm_path, const char *mp4_path,
                    const char *wav_path, const mx_options *opt, mx_result *res, char *err,
                    size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (!in || !in->read || !in->seek || !opt) {
        snprintf(err, errlen, "mx_make_outputs: input callbacks and options are required");
        fail_all(res, err);
        return -1;
    }
    if (probe(in, res, err, errlen) < 0) {
        size_t n = strlen(err);
        if (in->mime_type && n + 1 < errlen)
            snprintf(err + n, errlen - n, " (input labelled %s)", in->mime_type);
        fail_all(res, err);
        return -1;
    }
    const char *paths[MX_PASSES] = {webm_path, mp4_path, wav_path};
    mx_output *outs[MX_PASSES] = {&res->webm, &res->mp4, &res->wav};
    for (int k = 0; k < MX_PASSES; k++)
        if (!paths[k])
            mx_set(outs[k], MX_OUT_SKIPPED, "no %s path given", pass_names[k]);
    if (!in->another || !in->release || !in->tick || run_parallel(in, paths, opt, outs) != 0)
        for (int k = 0; k < MX_PASSES; k++)
            if (paths[k])
                run_pass(k, in, paths[k], opt, outs[k]);
    res->duration_us = FFMAX(res->duration_us, FFMAX(res->webm.duration_us, res->mp4.duration_us));
    return 0;
}
