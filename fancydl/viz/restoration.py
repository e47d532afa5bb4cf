"""Figures and the live control of the deconvolution chapter.

One function, :func:`restore_all`, computes what every figure shows (the noisy blurred
image, its Wiener and Richardson-Lucy restorations and their PSNRs), and one,
:func:`draw_restorations`, draws it; the live widget (for Colab and Binder) and the
book's precomputed explorer both call them, so they always agree.
"""

from __future__ import annotations

import numpy as np

from ..restoration import (add_gaussian_noise, blur, psnr, richardson_lucy,
                           transfer_function, wiener)
from .style import CMAPS, COLORS


def camera_scene(size=128):
    """scikit-image's ``camera`` photograph in gray, block-averaged to ``size`` x ``size``.

    Returns
    -------
    ndarray of shape (size, size), float64 in [0, 1]
    """
    from skimage import data

    image = data.camera().astype(np.float64) / 255
    factor = image.shape[0] // size
    cropped = image[:size * factor, :size * factor]
    return cropped.reshape(size, factor, size, factor).mean(axis=(1, 3))


def richardson_lucy_periodic(image, psf, num_iter, margin=32):
    """Richardson-Lucy for a *circularly* blurred image.

    :func:`fancydl.richardson_lucy` (like scikit-image's) assumes zeros outside the
    image and does not divide by the PSF's sum over the image, so pixels near the border,
    whose PSF partly falls outside, fade towards 0 and the error creeps inward a few
    pixels per iteration. Padding with the image's own periodic continuation by a wide
    ``margin`` and cropping afterwards removes the effect for circular data.

    Parameters
    ----------
    image : ndarray of shape (H, W), float, non-negative
    psf : ndarray of shape (k, k)
    num_iter : int
    margin : int
        Width of the periodic padding.

    Returns
    -------
    ndarray of shape (H, W), not clipped
    """
    padded = np.pad(image, margin, mode="wrap")
    restored = richardson_lucy(padded, psf, num_iter, clip=False)
    return restored[margin:-margin, margin:-margin]


def restore_all(scene, psf, sigma, balance, num_iter, seed=0):
    """Blur ``scene`` (circularly), add Gaussian noise, restore it two ways.

    Parameters
    ----------
    scene : ndarray of shape (H, W), float in [0, 1]
    psf : ndarray of shape (k, k)
    sigma : float
        Standard deviation of the noise.
    balance : float
        Wiener's regularization weight.
    num_iter : int
        Richardson-Lucy iterations (:func:`richardson_lucy_periodic` on the noisy
        image clipped to >= 0).
    seed : int
        Seed of the noise generator.

    Returns
    -------
    dict
        Images ``"noisy"``, ``"wiener"``, ``"richardson_lucy"`` and their PSNRs
        against ``scene`` under the same keys with a ``"psnr_"`` prefix.
    """
    rng = np.random.default_rng(seed)
    noisy = add_gaussian_noise(blur(scene, psf), sigma, rng)
    results = {"noisy": noisy,
               "wiener": wiener(noisy, psf, balance),
               "richardson_lucy": richardson_lucy_periodic(np.clip(noisy, 0, None), psf,
                                                           num_iter)}
    for name in list(results):
        results["psnr_" + name] = psnr(scene, np.clip(results[name], 0, 1))
    return results


def draw_restorations(axes, results, balance, num_iter):
    """Three image panels: noisy input, Wiener, Richardson-Lucy, PSNR in the titles."""
    titles = {"noisy": "blurred + noise",
              "wiener": f"Wiener, balance {balance:g}",
              "richardson_lucy": f"Richardson-Lucy, {num_iter} it"}
    for ax, (name, title) in zip(axes, titles.items()):
        ax.imshow(np.clip(results[name], 0, 1), cmap=CMAPS["image"], vmin=0, vmax=1)
        ax.set_title(f"{title}\nPSNR {results['psnr_' + name]:.1f} dB", fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])


def draw_restoration_figure(scene, psf, sigma, balance, num_iter):
    """Noisy input, Wiener and Richardson-Lucy restorations in one row.

    Parameters are those of :func:`restore_all`.

    Returns
    -------
    matplotlib Figure
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(7.5, 3.0))
    draw_restorations(axes, restore_all(scene, psf, sigma, balance, num_iter),
                      balance, num_iter)
    fig.tight_layout()
    return fig


def restoration_widget(scene, psf):
    """Live control: noise level, Wiener balance and Richardson-Lucy iterations.

    Returns
    -------
    ipywidgets.Widget
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    sigma = widgets.FloatLogSlider(value=0.01, base=10, min=-4, max=-0.5, step=0.1,
                                   description="noise σ")
    balance = widgets.FloatLogSlider(value=0.01, base=10, min=-5, max=1, step=0.25,
                                     description="balance")
    num_iter = widgets.IntSlider(value=20, min=1, max=200, step=1, description="RL iter")

    def show(sigma, balance, num_iter):
        draw_restoration_figure(scene, psf, sigma, balance, num_iter)
        plt.show()

    return widgets.interactive(show, sigma=sigma, balance=balance, num_iter=num_iter)


def radial_profile(power):
    """Average a centred-at-origin 2-D spectrum (full ``fftn`` layout) over rings of
    equal integer frequency radius.

    Returns
    -------
    radius : ndarray of int
    mean : ndarray
        Mean of ``power`` over each ring.
    """
    rows = np.fft.fftfreq(power.shape[0]) * power.shape[0]
    cols = np.fft.fftfreq(power.shape[1]) * power.shape[1]
    radius = np.rint(np.hypot(rows[:, None], cols[None, :])).astype(int)
    counts = np.bincount(radius.ravel())
    sums = np.bincount(radius.ravel(), weights=power.ravel())
    keep = counts > 0
    return np.arange(len(counts))[keep], sums[keep] / counts[keep]


def plot_noise_amplification(ax_transfer, ax_spectra, scene, psf, noise):
    """Why the inverse filter explodes, in two panels.

    Left: ``|H|`` along the rings of frequency (log scale). Right: the ring-averaged
    power of the scene ``|X|^2``, of the noise ``|N|^2`` and of what the inverse
    filter adds to the scene, ``|N / H|^2``.
    """
    otf = transfer_function(psf, scene.shape, is_real=False)
    radius, gain = radial_profile(np.abs(otf))
    ax_transfer.semilogy(radius, gain, color=COLORS["kernel"])
    ax_transfer.set_xlabel("frequency radius (cycles per image)")
    ax_transfer.set_ylabel("mean |H|")
    ax_transfer.set_title("The blur's transfer function |H|", fontsize=10)
    spectrum_noise = np.fft.fftn(noise)
    curves = {"scene |X|²": (np.abs(np.fft.fftn(scene)) ** 2, COLORS["input"]),
              "noise |N|²": (np.abs(spectrum_noise) ** 2, COLORS["neutral"]),
              "inverse-filtered noise |N/H|²": (np.abs(spectrum_noise / otf) ** 2,
                                                COLORS["highlight"])}
    for label, (power, color) in curves.items():
        radius, mean = radial_profile(power)
        ax_spectra.semilogy(radius, mean, label=label, color=color)
    ax_spectra.set_xlabel("frequency radius (cycles per image)")
    ax_spectra.set_ylabel("mean power")
    ax_spectra.set_title("Noise divided by |H| swamps the scene", fontsize=10)
    ax_spectra.legend(fontsize=9)
