#!/usr/bin/env node
// A ClusterEnv worker in Node.js with the stock @grpc/grpc-js and @grpc/proto-loader: it dials a hub, registers,
// and serves CartPole-v1 sub-envs (Gymnasium's equations, NextStep autoreset) to a C# learner. It shows that the
// protocol needs nothing but a stock gRPC library and the .proto.
//
//   npm install @grpc/grpc-js @grpc/proto-loader
//   node worker.js --hub 127.0.0.1:5555 --num-envs 4 --worker-id node0 [--token T | CLUSTERENV_TOKEN=T] [--frames HxW]
//
// --frames HxW observes H×W gray frames (a uint8 Box of shape [1, H, W]) instead of the four floats, sent as their
// bytes: the cart is a 3-pixel bar on the bottom row at column floor((x + 2.4) / 4.8 · W), the pole's tip a pixel
// of 128 on the top row, shifted from the cart by round(θ / 0.2095 · W / 4) columns (x and θ rounded to float32).
//
// Exit codes as the C# worker: 0 when the hub closes the stream, 1 when it refuses the worker or the connection
// fails, 2 on bad arguments.
'use strict';
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function parseArgs(argv) {
  const a = { hub: null, numEnvs: 1, workerId: `node-${process.pid}`, token: process.env.CLUSTERENV_TOKEN || '', env: 'CartPole-v1',
    frames: null, proto: path.join(__dirname, '..', '..', 'ClusterEnv.Core', 'Transport', 'Protos', 'clusterenv.proto') };
  for (let i = 2; i < argv.length; i++) {
    const v = argv[i + 1];
    switch (argv[i]) {
      case '--hub': a.hub = v.replace(/^https?:\/\//, '').replace(/\/$/, ''); i++; break;
      case '--num-envs': a.numEnvs = parseInt(v, 10); i++; break;
      case '--worker-id': a.workerId = v; i++; break;
      case '--token': a.token = v; i++; break;
      case '--env': a.env = v; i++; break;
      case '--proto': a.proto = v; i++; break;
      case '--frames': {
        const m = /^(\d+)x(\d+)$/.exec(v || '');
        if (!m || +m[1] < 2 || +m[2] < 3) { console.error(`--frames takes HEIGHTxWIDTH (at least 2x3), e.g. 8x16; got '${v}'.`); process.exit(2); }
        a.frames = { h: +m[1], w: +m[2] }; i++; break;
      }
      default: console.error(`Unknown argument '${argv[i]}'. Use --hub, --num-envs, --worker-id, --token, --env, --frames, --proto.`); process.exit(2);
    }
  }
  if (!a.hub) { console.error('--hub HOST:PORT is required.'); process.exit(2); }
  if (a.env !== 'CartPole-v1') { console.error(`This example serves CartPole-v1 only, not ${a.env}.`); process.exit(2); }
  if (!(a.numEnvs >= 1)) { console.error('--num-envs must be a positive integer.'); process.exit(2); }
  return a;
}

// CartPole-v1 with Gymnasium's constants and Euler integration; float64 state, float32 observations.
class CartPole {
  constructor(seed) { this.rng = mulberry32(seed >>> 0); this.state = [0, 0, 0, 0]; this.steps = 0; this.ret = 0; }
  reset(seed) {
    if (seed !== null) this.rng = mulberry32(seed >>> 0);
    this.state = this.state.map(() => this.rng() * 0.1 - 0.05);
    this.steps = 0; this.ret = 0;
    return this.state;
  }
  step(action) {
    const [g, mc, mp, l, fm, tau] = [9.8, 1.0, 0.1, 0.5, 10.0, 0.02];
    let [x, xd, th, thd] = this.state;
    const force = action === 1 ? fm : -fm;
    const c = Math.cos(th), s = Math.sin(th), total = mc + mp, pml = mp * l;
    const temp = (force + pml * thd * thd * s) / total;
    const thacc = (g * s - c * temp) / (l * (4.0 / 3.0 - mp * c * c / total));
    const xacc = temp - pml * thacc * c / total;
    x += tau * xd; xd += tau * xacc; th += tau * thd; thd += tau * thacc;
    this.state = [x, xd, th, thd];
    this.steps++; this.ret += 1;
    const terminated = x < -2.4 || x > 2.4 || th < -12 * 2 * Math.PI / 360 || th > 12 * 2 * Math.PI / 360;
    return { reward: 1.0, terminated, truncated: !terminated && this.steps >= 500 };
  }
}

function mulberry32(a) {
  return () => { a |= 0; a = (a + 0x6D2B79F5) | 0; let t = Math.imul(a ^ (a >>> 15), 1 | a); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
}

function tensor(dtype, shape, buffer) { return { dtype, shape, data: buffer }; }

// One gray frame of a CartPole state into `out` at `at` (h × w bytes), as --frames describes.
function drawFrame(state, h, w, out, at) {
  out.fill(0, at, at + h * w);
  const x = Math.fround(state[0]), th = Math.fround(state[2]);
  const cx = Math.min(w - 1, Math.max(0, Math.floor((x + 2.4) / 4.8 * w)));
  for (let c = Math.max(0, cx - 1); c <= Math.min(w - 1, cx + 1); c++) out[at + (h - 1) * w + c] = 255;
  const tip = Math.min(w - 1, Math.max(0, cx + Math.round(th / 0.2095 * w / 4)));
  out[at + tip] = 128;
}

function main() {
  const args = parseArgs(process.argv);
  const def = protoLoader.loadSync(args.proto, { keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  const pb = grpc.loadPackageDefinition(def).clusterenv.v1;
  const client = new pb.WorkerHub(args.hub, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const metadata = new grpc.Metadata();
  if (args.token) metadata.set('x-clusterenv-token', args.token);
  const call = client.Connect(metadata);

  const n = args.numEnvs;
  const envs = Array.from({ length: n }, (_, i) => new CartPole(i));
  const autoreset = new Array(n).fill(false);
  let nextStep = true; // Welcome.autoreset_mode
  let closing = false;

  const frames = args.frames;
  const box = (low, high) => {
    const lo = Buffer.alloc(16), hi = Buffer.alloc(16);
    low.forEach((v, i) => lo.writeFloatLE(v, i * 4)); high.forEach((v, i) => hi.writeFloatLE(v, i * 4));
    return { box: { low: tensor('FLOAT32', [4], lo), high: tensor('FLOAT32', [4], hi), dtype: 'FLOAT32' } };
  };
  const imageBox = (h, w) => { // bounds travel as float32 whatever the dtype
    const lo = Buffer.alloc(h * w * 4), hi = Buffer.alloc(h * w * 4);
    for (let i = 0; i < h * w; i++) hi.writeFloatLE(255, i * 4);
    return { box: { low: tensor('FLOAT32', [1, h, w], lo), high: tensor('FLOAT32', [1, h, w], hi), dtype: 'UINT8' } };
  };
  const big = 3.4028234663852886e38;
  call.write({ seq: 0, register: {
    protocol_version: 1, worker_id: args.workerId, token: '', env_id: args.env, num_envs: n,
    observation_space: frames ? imageBox(frames.h, frames.w) : box([-4.8, -big, -0.41887903, -big], [4.8, big, 0.41887903, big]),
    action_space: { discrete: { n: 2, start: 0 } },
    host: require('os').hostname(), pid: process.pid, runtime: `node ${process.version} grpc-js ${require('@grpc/grpc-js/package.json').version}`,
    max_message_size: 64 * 1024 * 1024,
  } });

  const observations = () => {
    if (frames) { // uint8 frames travel as their bytes, a quarter of float32
      const size = frames.h * frames.w, b = Buffer.alloc(n * size);
      envs.forEach((e, i) => drawFrame(e.state, frames.h, frames.w, b, i * size));
      return tensor('UINT8', [n, size], b);
    }
    const b = Buffer.alloc(n * 16);
    envs.forEach((e, i) => e.state.forEach((v, j) => b.writeFloatLE(v, (i * 4 + j) * 4)));
    return tensor('FLOAT32', [n, 4], b);
  };

  call.on('data', (m) => {
    switch (m.command) {
      case 'welcome':
        nextStep = m.welcome.autoreset_mode === 'AUTORESET_NEXT_STEP';
        break;
      case 'reset': {
        const r = m.reset;
        envs.forEach((e, i) => { if (r.mask.length === 0 || r.mask[i]) { e.reset(r.has_seed[i] ? Number(r.seeds[i]) : null); autoreset[i] = false; } });
        call.write({ seq: m.seq, reset: { observations: observations() } });
        break;
      }
      case 'step': {
        const a = m.step.actions.data;
        const rew = Buffer.alloc(n * 8), term = Buffer.alloc(n), trunc = Buffer.alloc(n);
        envs.forEach((e, i) => {
          if (nextStep && autoreset[i]) { e.reset(null); autoreset[i] = false; rew.writeDoubleLE(0, i * 8); return; }
          const r = e.step(Number(a.readBigInt64LE(i * 8)));
          rew.writeDoubleLE(r.reward, i * 8); term[i] = r.terminated ? 1 : 0; trunc[i] = r.truncated ? 1 : 0;
          autoreset[i] = r.terminated || r.truncated;
        });
        call.write({ seq: m.seq, step: { observations: observations(), rewards: tensor('FLOAT64', [n], rew),
          terminated: tensor('BOOL', [n], term), truncated: tensor('BOOL', [n], trunc) } });
        break;
      }
      case 'close':
        closing = true;
        call.write({ seq: m.seq, closed: {} });
        call.end();
        break;
      default:
        call.write({ seq: m.seq, error: { env_index: -1, type: 'NotImplementedError', message: `This Node worker handles welcome, reset, step and close, not ${m.command}.` } });
    }
  });
  call.on('error', (e) => {
    console.error(`node worker '${args.workerId}': ${grpc.status[e.code]}: ${e.details}`);
    process.exit(closing && e.code === grpc.status.OK ? 0 : 1);
  });
  call.on('end', () => process.exit(0));
}

main();
