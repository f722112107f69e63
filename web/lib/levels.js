// levels.js -- live audio level of a MediaStream (AudioContext +
// AnalyserNode, RMS of the time-domain signal), for a <meter min=0 max=1>.
//
//   const meter = startLevelMeter(stream, (level) => { meterEl.value = level; });
//   meter.stop();

export function rms(samples) {
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i] * samples[i];
  return samples.length ? Math.sqrt(sum / samples.length) : 0;
}

// Maps an RMS amplitude to 0..1 on a dB scale (-60 dBFS .. 0 dBFS), which
// reads better than the raw amplitude (speech sits around 0.05-0.2 RMS).
export function levelFromRms(value) {
  if (value <= 0) return 0;
  const db = 20 * Math.log10(value);
  return Math.max(0, Math.min(1, (db + 60) / 60));
}

export function startLevelMeter(stream, onLevel, { meter } = {}) {
  const AC = window.AudioContext || window.webkitAudioContext;
  if (!AC || !stream || stream.getAudioTracks().length === 0) {
    onLevel?.(0);
    return { stop() {}, context: null };
  }
  const context = new AC();
  const source = context.createMediaStreamSource(stream);
  const analyser = context.createAnalyser();
  analyser.fftSize = 2048;
  source.connect(analyser);
  const buf = new Float32Array(analyser.fftSize);
  let smooth = 0;
  let raf = 0;
  let stopped = false;
  const tick = () => {
    if (stopped) return;
    analyser.getFloatTimeDomainData(buf);
    const level = levelFromRms(rms(buf));
    // fast attack, slow release
    smooth = level > smooth ? level : smooth * 0.9 + level * 0.1;
    if (meter) meter.value = smooth;
    onLevel?.(smooth);
    raf = requestAnimationFrame(tick);
  };
  // Autoplay policy: a context made before a user gesture starts suspended.
  const resume = () => context.state === 'suspended' && context.resume().catch(() => {});
  resume();
  document.addEventListener('pointerdown', resume, { once: true });
  document.addEventListener('keydown', resume, { once: true });
  raf = requestAnimationFrame(tick);
  return {
    context,
    stop() {
      stopped = true;
      cancelAnimationFrame(raf);
      try {
        source.disconnect();
      } catch {
        /* already disconnected */
      }
      context.close().catch(() => {});
    },
  };
}
