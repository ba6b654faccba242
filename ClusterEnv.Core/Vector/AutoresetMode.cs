namespace ClusterEnv.Vector;

/// <summary>
/// How a vector env restarts a sub-env whose episode ended, exactly as Gymnasium 1.x's <c>AutoresetMode</c>.
/// Take sub-env i whose episode ends at call t.
/// </summary>
public enum AutoresetMode
{
    /// <summary>
    /// Default. At call t: the true final observation, reward and flags. At call t+1 the action for i is
    /// <b>ignored</b> and the sub-env is reset: the first observation of the new episode, reward 0, both flags
    /// false, and the reset info. A training loop must drop the transition stored at t+1 for i.
    /// </summary>
    NextStep,

    /// <summary>
    /// At call t the sub-env is reset inside the call: the observation is already the new episode's first one,
    /// while reward and flags are the final step's. The final observation is in
    /// <see cref="VectorInfo.FinalObservations"/> (mask <see cref="VectorInfo.HasFinalObservation"/>) and the final
    /// step's info in <see cref="VectorInfo.FinalEpisode"/>.
    /// </summary>
    SameStep,

    /// <summary>
    /// Nothing resets automatically; stepping a finished sub-env throws. Reset chosen sub-envs with
    /// <c>Reset(options: new ResetOptions { ResetMask = mask })</c>.
    /// </summary>
    Disabled,
}
