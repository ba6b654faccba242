namespace ClusterEnv.Rendering;

/// <summary>The vector maths Gymnasium's renderers do through <c>pygame.math.Vector2</c>.</summary>
internal static class Geometry
{
    private const double Epsilon = 1e-6; // pygame's default Vector2.epsilon

    /// <summary>
    /// <c>Vector2(x, y).rotate_rad(angle)</c>: the angle reduced to [0, 2π) and rotations within ε of a multiple of 90°
    /// made exact, as pygame does, else the usual rotation.
    /// </summary>
    public static (double X, double Y) Rotate(double x, double y, double angle)
    {
        angle = CFmod(angle, 2 * Math.PI);
        if (angle < 0) angle += 2 * Math.PI;
        if (CFmod(angle + Epsilon, Math.PI / 2) < 2 * Epsilon)
        {
            return (int)((angle + Epsilon) / (Math.PI / 2)) switch
            {
                0 or 4 => (x, y),
                1 => (-y, x),
                2 => (-x, -y),
                _ => (y, -x),
            };
        }
        double sin = Math.Sin(angle), cos = Math.Cos(angle);
        return (cos * x - sin * y, sin * x + cos * y);
    }

    /// <summary>C's <c>fmod</c> (the remainder with the sign of the dividend; C#'s % on doubles is the same).</summary>
    private static double CFmod(double a, double b) => a % b;
}
