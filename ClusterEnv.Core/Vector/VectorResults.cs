namespace ClusterEnv.Vector;

/// <summary>
/// What <see cref="IVectorEnv.Step(ReadOnlySpan{int})"/> returns: Gymnasium's
/// <c>(observations, rewards, terminations, truncations, infos)</c>. The arrays belong to the vector env and are
/// overwritten by its next call (Gymnasium's <c>copy=False</c>); copy what you keep.
/// </summary>
/// <param name="Observations">numEnvs × observation size floats, row i for sub-env i.</param>
/// <param name="Rewards">Reward per sub-env.</param>
/// <param name="Terminated">Terminal flag per sub-env.</param>
/// <param name="Truncated">Truncation flag per sub-env.</param>
/// <param name="Info">Batched info.</param>
public readonly record struct VectorStepResult(float[] Observations, double[] Rewards, bool[] Terminated, bool[] Truncated, VectorInfo Info);

/// <summary>What <see cref="IVectorEnv.Reset(long?, Envs.ResetOptions?)"/> returns: Gymnasium's <c>(observations, infos)</c>.</summary>
public readonly record struct VectorResetResult(float[] Observations, VectorInfo Info);
