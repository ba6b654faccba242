using static ClusterEnv.Tests.Reference.Np;

namespace ClusterEnv.Tests.Reference;

/// <summary>
/// Slow, literal transliterations of Gymnasium's classic-control <c>step</c> functions (Farama-Foundation/Gymnasium,
/// gymnasium/envs/classic_control/*.py), line by line, with NumPy dtypes tracked by <see cref="Np"/>. Used only to
/// check the envs bit for bit.
/// </summary>
internal static class GymnasiumReference
{
    public sealed class CartPoleRef(double[] state)
    {
        public double[] State = state;
        private int? _stepsBeyondTerminated;

        public (float[] Obs, double Reward, bool Terminated) Step(int action)
        {
            double gravity = 9.8, masscart = 1.0, masspole = 0.1;
            double total_mass = masspole + masscart, length = 0.5, polemass_length = masspole * length;
            double force_mag = 10.0, tau = 0.02;
            double theta_threshold_radians = 12 * 2 * Math.PI / 360, x_threshold = 2.4;

            var (x, x_dot, theta, theta_dot) = (State[0], State[1], State[2], State[3]);
            double force = action == 1 ? force_mag : -force_mag;
            double costheta = Math.Cos(theta);
            double sintheta = Math.Sin(theta);
            double temp = (force + polemass_length * Square(theta_dot) * sintheta) / total_mass;
            double thetaacc = (gravity * sintheta - costheta * temp) / (length * (4.0 / 3.0 - masspole * Square(costheta) / total_mass));
            double xacc = temp - polemass_length * thetaacc * costheta / total_mass;
            x = x + tau * x_dot;
            x_dot = x_dot + tau * xacc;
            theta = theta + tau * theta_dot;
            theta_dot = theta_dot + tau * thetaacc;
            State = [x, x_dot, theta, theta_dot];
            bool terminated = x < -x_threshold || x > x_threshold || theta < -theta_threshold_radians || theta > theta_threshold_radians;
            double reward;
            if (!terminated) reward = 1.0;
            else if (_stepsBeyondTerminated is null) { _stepsBeyondTerminated = 0; reward = 1.0; }
            else { _stepsBeyondTerminated++; reward = 0.0; }
            return (State.Select(v => (float)v).ToArray(), reward, terminated);
        }

        private static double Square(double v) => v * v;
    }

    public sealed class AcrobotRef(double[] state, bool stateIsFloat32)
    {
        private double[] _s = state;
        private bool _f32 = stateIsFloat32;
        private static readonly double[] AVAIL_TORQUE = [-1.0, 0.0, +1];

        public float[] Observation()
        {
            if (_f32) // numpy cos/sin of np.float32 scalars run in float32
                return [MathF.Cos((float)_s[0]), MathF.Sin((float)_s[0]), MathF.Cos((float)_s[1]), MathF.Sin((float)_s[1]), (float)_s[2], (float)_s[3]];
            return [(float)Math.Cos(_s[0]), (float)Math.Sin(_s[0]), (float)Math.Cos(_s[1]), (float)Math.Sin(_s[1]), (float)_s[2], (float)_s[3]];
        }

        public (float[] Obs, double Reward, bool Terminated) Step(int a)
        {
            double torque = AVAIL_TORQUE[a];
            double[] s_augmented = [.. _s, torque]; // np.append promotes to float64
            double[] ns = Rk4(Dsdt, s_augmented, [0, 0.2]);
            ns[0] = Wrap(ns[0], -Math.PI, Math.PI);
            ns[1] = Wrap(ns[1], -Math.PI, Math.PI);
            ns[2] = Bound(ns[2], -4 * Math.PI, 4 * Math.PI);
            ns[3] = Bound(ns[3], -9 * Math.PI, 9 * Math.PI);
            _s = ns;
            _f32 = false;
            bool terminated = -Math.Cos(_s[0]) - Math.Cos(_s[1] + _s[0]) > 1.0;
            return (Observation(), terminated ? 0.0 : -1.0, terminated);
        }

        private static double[] Dsdt(double[] s_augmented)
        {
            double m1 = 1.0, m2 = 1.0, l1 = 1.0, lc1 = 0.5, lc2 = 0.5, I1 = 1.0, I2 = 1.0, g = 9.8;
            double a = s_augmented[^1];
            double theta1 = s_augmented[0], theta2 = s_augmented[1], dtheta1 = s_augmented[2], dtheta2 = s_augmented[3];
            double d1 = m1 * P2(lc1) + m2 * (P2(l1) + P2(lc2) + 2 * l1 * lc2 * Math.Cos(theta2)) + I1 + I2;
            double d2 = m2 * (P2(lc2) + l1 * lc2 * Math.Cos(theta2)) + I2;
            double phi2 = m2 * lc2 * g * Math.Cos(theta1 + theta2 - Math.PI / 2.0);
            double phi1 = -m2 * l1 * lc2 * P2(dtheta2) * Math.Sin(theta2) - 2 * m2 * l1 * lc2 * dtheta2 * dtheta1 * Math.Sin(theta2)
                          + (m1 * lc1 + m2 * l1) * g * Math.Cos(theta1 - Math.PI / 2) + phi2;
            double ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * P2(dtheta1) * Math.Sin(theta2) - phi2) / (m2 * P2(lc2) + I2 - P2(d2) / d1);
            double ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
            return [dtheta1, dtheta2, ddtheta1, ddtheta2, 0.0];
        }

        private static double P2(double x) => Math.Pow(x, 2);

        private static double[] Rk4(Func<double[], double[]> derivs, double[] y0, double[] t)
        {
            var yout = new double[t.Length][];
            yout[0] = (double[])y0.Clone();
            for (int i = 0; i < t.Length - 1; i++)
            {
                double dt = t[i + 1] - t[i], dt2 = dt / 2.0;
                double[] y = yout[i];
                double[] k1 = derivs(y);
                double[] k2 = derivs(Add(y, Scale(dt2, k1)));
                double[] k3 = derivs(Add(y, Scale(dt2, k2)));
                double[] k4 = derivs(Add(y, Scale(dt, k3)));
                yout[i + 1] = Add(y, Scale(dt / 6.0, Add(Add(Add(k1, Scale(2, k2)), Scale(2, k3)), k4)));
            }
            return yout[^1][..4];
        }

        private static double[] Add(double[] a, double[] b) => a.Zip(b, (x, y) => x + y).ToArray();
        private static double[] Scale(double c, double[] a) => a.Select(x => c * x).ToArray();

        private static double Wrap(double x, double m, double M)
        {
            double diff = M - m;
            while (x > M) x = x - diff;
            while (x < m) x = x + diff;
            return x;
        }

        private static double Bound(double x, double m, double M) => Math.Min(Math.Max(x, m), M);
    }

    public sealed class MountainCarRef(double position, double velocity)
    {
        private double _position = position, _velocity = velocity;

        public (float[] Obs, double Reward, bool Terminated) Step(int action)
        {
            double min_position = -1.2, max_position = 0.6, max_speed = 0.07, goal_position = 0.5, goal_velocity = 0, force = 0.001, gravity = 0.0025;
            double position = _position, velocity = _velocity;
            velocity += (action - 1) * force + Math.Cos(3 * position) * (-gravity);
            velocity = Clip(velocity, -max_speed, max_speed);
            position += velocity;
            position = Clip(position, min_position, max_position);
            if (position == min_position && velocity < 0) velocity = 0;
            bool terminated = position >= goal_position && velocity >= goal_velocity;
            (_position, _velocity) = (position, velocity);
            return ([(float)position, (float)velocity], -1.0, terminated);
        }

        private static double Clip(double v, double lo, double hi) => v < lo ? lo : v > hi ? hi : v;
    }

    public sealed class MountainCarContinuousRef(double position, double velocity)
    {
        // After reset the state is np.array([uniform, 0]) (float64); every step stores float32.
        private Np _position = F64(position), _velocity = F64(velocity);

        public (float[] Obs, double Reward, bool Terminated) Step(float a0)
        {
            Np min_action = Py(-1.0), max_action = Py(1.0), min_position = Py(-1.2), max_position = Py(0.6), max_speed = Py(0.07);
            Np goal_position = Py(0.45), goal_velocity = Py(0), power = Py(0.0015);
            Np action0 = F32(a0);

            Np position = _position, velocity = _velocity;
            Np force = PyMin(PyMax(action0, min_action), max_action);
            velocity += force * power - Py(0.0025) * Py(Math.Cos((Py(3) * position).V));
            if (velocity > max_speed) velocity = max_speed;
            if (velocity < Py(-max_speed.V)) velocity = Py(-max_speed.V);
            position += velocity;
            if (position > max_position) position = max_position;
            if (position < min_position) position = min_position;
            if (position.Eq(min_position) && velocity < Py(0)) velocity = Py(0);
            bool terminated = position >= goal_position && velocity >= goal_velocity;
            double reward = 0;
            if (terminated) reward = 100.0;
            reward -= Math.Pow(action0.V, 2) * 0.1;
            _position = F32(position.V);
            _velocity = F32(velocity.V);
            return ([(float)_position.V, (float)_velocity.V], reward, terminated);
        }
    }

    public sealed class PendulumRef(double theta, double thetaDot)
    {
        private Np _th = F64(theta), _thdot = F64(thetaDot);

        public (float[] Obs, double Reward) Step(float a0)
        {
            Np g = Py(10.0), m = Py(1.0), l = Py(1.0), dt = Py(0.05);
            Np th = _th, thdot = _thdot;
            Np u = F32(Math.Clamp(a0, -2.0f, 2.0f)); // np.clip on a float32 array keeps float32
            Np costs = AngleNormalize(th).Sq() + Py(0.1) * thdot.Sq() + Py(0.001) * u.Sq();
            Np newthdot = thdot + (Py(3) * g / (Py(2) * l) * F64(Math.Sin(th.V)) + Py(3.0) / (m * l.Sq()) * u) * dt;
            newthdot = F64(Math.Clamp(newthdot.V, -8, 8));
            Np newth = th + newthdot * dt;
            (_th, _thdot) = (newth, newthdot);
            return ([(float)Math.Cos(newth.V), (float)Math.Sin(newth.V), (float)newthdot.V], -costs.V);
        }

        // ((x + pi) % (2 * pi)) - pi, with CPython's float_rem for %.
        private static Np AngleNormalize(Np x)
        {
            double vx = (x + Py(Math.PI)).V, wx = (Py(2) * Py(Math.PI)).V;
            double mod = FMod(vx, wx);
            if (mod != 0) { if (wx < 0 != mod < 0) mod += wx; }
            else mod = Math.CopySign(0.0, wx);
            return F64(mod) - Py(Math.PI);
        }

        private static double FMod(double a, double b) => a % b;
    }
}
