/* mux_wav.c -- the WAV: the audio decoded, resampled to 48 kHz s16le with
 * the source's channel count, after wav_pad_us of silence so that every
 * participant's WAV starts at session time zero. */
#include "mux_core.h"

#include <stdio.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>

#define WAV_RATE          48000
#define WAV_SILENCE_CHUNK 4800 /* samples per silence packet: 100 ms */

typedef struct wav_sink {
    AVFormatContext *oc;
    int channels;
    int64_t written; /* samples per channel */
} wav_sink;

static int wav_put(void *opaque, uint8_t **data, int nb_samples)
{
    wav_sink *w = opaque;
    AVPacket *pkt = av_packet_alloc();
    int size = nb_samples * w->channels * 2;
    int ret;

    if (!pkt)
        return AVERROR(ENOMEM);
    if ((ret = av_new_packet(pkt, size)) >= 0) {
        memcpy(pkt->data, data[0], size);
        pkt->pts = pkt->dts = w->written;
        pkt->duration = nb_samples;
        ret = av_write_frame(w->oc, pkt);
        w->written += nb_samples;
    }
    av_packet_free(&pkt);
    return ret;
}

static int write_silence(wav_sink *w, int64_t samples)
{
    uint8_t *buf = av_mallocz((size_t)WAV_SILENCE_CHUNK * w->channels * 2);
    int ret = buf ? 0 : AVERROR(ENOMEM);

    while (ret >= 0 && samples > 0) {
        int n = (int)FFMIN(samples, WAV_SILENCE_CHUNK);
        ret = wav_put(w, &buf, n);
        samples -= n;
    }
    av_free(buf);
    return ret;
}

static int open_wav(AVFormatContext **oc, const char *path, int channels, const mx_options *opt,
                    mx_output *o)
{
    AVDictionary *opts = NULL;
    AVStream *st;
    int ret;

    if ((ret = avformat_alloc_output_context2(oc, NULL, "wav", path)) < 0) {
        mx_set(o, MX_OUT_FAILED, "avformat_alloc_output_context2 (wav): %s", av_err2str(ret));
        return -1;
    }
    (*oc)->flags |= AVFMT_FLAG_BITEXACT;
    if (!(st = avformat_new_stream(*oc, NULL))) {
        mx_set(o, MX_OUT_FAILED, "avformat_new_stream (wav): out of memory");
        return -1;
    }
    st->time_base = (AVRational){1, WAV_RATE};
    st->codecpar->codec_type = AVMEDIA_TYPE_AUDIO;
    st->codecpar->codec_id = AV_CODEC_ID_PCM_S16LE;
    st->codecpar->sample_rate = WAV_RATE;
    st->codecpar->bits_per_coded_sample = 16;
    st->codecpar->block_align = channels * 2;
    st->codecpar->bit_rate = (int64_t)WAV_RATE * channels * 16;
    av_channel_layout_default(&st->codecpar->ch_layout, channels);
    if ((ret = mx_out_pb_open(&(*oc)->pb, path, opt->live_out[2])) < 0) {
        mx_set(o, MX_OUT_FAILED, "opening the WAV output %s: %s", path, av_err2str(ret));
        return -1;
    }
    av_dict_set(&opts, "rf64", "auto", 0); /* past 4 GiB (six hours of stereo) */
    ret = avformat_write_header(*oc, &opts);
    av_dict_free(&opts);
    if (ret < 0) {
        mx_set(o, MX_OUT_FAILED, "avformat_write_header (wav): %s", av_err2str(ret));
        return -1;
    }
    return 0;
}

static int decode_all(mx_src *s, mx_adec *d, wav_sink *w, mx_output *o)
{
    AVPacket *pkt = av_packet_alloc();
    char err[200];
    int ret = 0;

    if (!pkt)
        return -1;
    while ((ret = av_read_frame(s->fmt, pkt)) >= 0) {
        if (pkt->stream_index == s->a)
            ret = mx_adec_send(d, pkt, wav_put, w, err, sizeof err);
        av_packet_unref(pkt);
        if (ret < 0) {
            mx_set(o, MX_OUT_FAILED, "%s", err);
            break;
        }
    }
    av_packet_free(&pkt);
    if (ret != AVERROR_EOF) {
        if (o->state != MX_OUT_FAILED)
            mx_set(o, MX_OUT_FAILED, "av_read_frame: %s", av_err2str(ret));
        return -1;
    }
    if (mx_adec_send(d, NULL, wav_put, w, err, sizeof err) < 0) {
        mx_set(o, MX_OUT_FAILED, "%s", err);
        return -1;
    }
    return 0;
}

void mx_write_wav(const mx_input *in, const char *path, const mx_options *opt, mx_output *o)
{
    wav_sink w = {0};
    mx_adec d = {0};
    char err[256];
    mx_src s;
    int ret;

    if (mx_src_open(&s, in, err, sizeof err) < 0) {
        mx_set(o, MX_OUT_FAILED, "%s", err);
        return;
    }
    if (s.a < 0) {
        mx_set(o, MX_OUT_SKIPPED, "the track has no audio");
        goto out;
    }
    if (mx_adec_open(&d, s.fmt->streams[s.a], AV_SAMPLE_FMT_S16, WAV_RATE, err, sizeof err) < 0) {
        mx_set(o, MX_OUT_FAILED, "%s", err);
        goto out;
    }
    w.channels = d.channels;
    if (open_wav(&w.oc, path, w.channels, opt, o) < 0)
        goto out;
    if ((ret = write_silence(&w, av_rescale(FFMAX(opt->wav_pad_us, 0), WAV_RATE, 1000000))) < 0) {
        mx_set(o, MX_OUT_FAILED, "writing the silence (wav): %s", av_err2str(ret));
        goto out;
    }
    if (decode_all(&s, &d, &w, o) < 0)
        goto out;
    if ((ret = av_write_trailer(w.oc)) < 0) {
        mx_set(o, MX_OUT_FAILED, "av_write_trailer (wav): %s", av_err2str(ret));
        goto out;
    }
    snprintf(o->codecs, sizeof o->codecs, "pcm_s16le");
    o->sample_rate = WAV_RATE;
    o->channels = w.channels;
    o->duration_us = av_rescale(w.written, 1000000, WAV_RATE);
    mx_set(o, MX_OUT_DONE, "%s", "");
out:
    if (w.oc)
        mx_out_pb_close(&w.oc->pb, opt->live_out[2]);
    avformat_free_context(w.oc);
    mx_adec_close(&d);
    mx_src_close(&s);
}
