//! How sharp a face is: the variance of the Laplacian of its crop, resized to a fixed size so
//! the measure does not depend on how large the face is in the picture.

use image::imageops::{self, FilterType};
use image::{GrayImage, RgbImage};

use crate::face::BoundingBox;

/// The side the face crop is resized to before measuring.
const SIDE: u32 = 128;

/// Variance of the 4-neighbour Laplacian over the face (higher = sharper). A sharp, well-lit
/// face measures in the hundreds; a heavily blurred one under ~30.
pub fn sharpness(rgb: &RgbImage, face: BoundingBox) -> f64 {
    let Some((x, y, w, h)) = face.clipped(rgb.width(), rgb.height()) else {
        return 0.0;
    };
    let crop = imageops::crop_imm(rgb, x, y, w, h).to_image();
    let gray: GrayImage = image::DynamicImage::ImageRgb8(crop).into_luma8();
    let gray = imageops::resize(&gray, SIDE, SIDE, FilterType::Triangle);
    laplacian_variance(&gray)
}

fn laplacian_variance(gray: &GrayImage) -> f64 {
    let (w, h) = gray.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    let px = |x: u32, y: u32| f64::from(gray.get_pixel(x, y)[0]);
    let mut sum = 0.0;
    let mut sum_sq = 0.0;
    let mut n = 0.0;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let lap = px(x - 1, y) + px(x + 1, y) + px(x, y - 1) + px(x, y + 1) - 4.0 * px(x, y);
            sum += lap;
            sum_sq += lap * lap;
            n += 1.0;
        }
    }
    let mean = sum / n;
    sum_sq / n - mean * mean
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkerboard() -> RgbImage {
        RgbImage::from_fn(200, 200, |x, y| {
            if (x / 4 + y / 4) % 2 == 0 {
                image::Rgb([255, 255, 255])
            } else {
                image::Rgb([0, 0, 0])
            }
        })
    }

    #[test]
    fn blurring_lowers_the_measure_by_an_order_of_magnitude() {
        let sharp = checkerboard();
        let blurred = imageops::blur(&sharp, 6.0);
        let whole = BoundingBox {
            left: 0,
            top: 0,
            width: 200,
            height: 200,
        };
        let (a, b) = (sharpness(&sharp, whole), sharpness(&blurred, whole));
        assert!(a > 10.0 * b, "sharp {a} vs blurred {b}");
    }

    #[test]
    fn a_flat_image_measures_zero() {
        let flat = RgbImage::from_pixel(50, 50, image::Rgb([80, 80, 80]));
        let whole = BoundingBox {
            left: 0,
            top: 0,
            width: 50,
            height: 50,
        };
        assert_eq!(sharpness(&flat, whole), 0.0);
    }

    #[test]
    fn a_box_outside_the_image_measures_zero() {
        let outside = BoundingBox {
            left: 500,
            top: 500,
            width: 10,
            height: 10,
        };
        assert_eq!(sharpness(&checkerboard(), outside), 0.0);
    }
}
