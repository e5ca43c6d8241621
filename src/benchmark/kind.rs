//! Kinds of object (organ, vessel, bone, muscle, lesion), from class names alone, for the report's
//! table by kind: a fine-tuned model should not lose a whole kind of object its base segmented,
//! and a class list mixes kinds unevenly. TotalSegmentator's names and the phantom's ("phantom
//! liver_lesion") are covered; any other name is an organ.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ObjectKind {
    Organ,
    Vessel,
    Bone,
    Muscle,
    Lesion,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 5] =
        [ObjectKind::Organ, ObjectKind::Vessel, ObjectKind::Bone, ObjectKind::Muscle, ObjectKind::Lesion];

    /// The kind of the class named `class`; the first matching rule wins (so a "kidney_cyst" is a
    /// lesion, not an organ).
    pub fn of(class: &str) -> Self {
        const RULES: [(ObjectKind, &[&str]); 4] = [
            (ObjectKind::Lesion, &["lesion", "cyst", "tumor", "tumour", "nodule", "metasta"]),
            (ObjectKind::Vessel, &["aorta", "vena", "vein", "artery", "trunk"]),
            (
                ObjectKind::Bone,
                &[
                    "vertebra",
                    "rib_",
                    "humerus",
                    "femur",
                    "scapula",
                    "clavicula",
                    "sternum",
                    "hip_",
                    "sacrum",
                    "skull",
                    "costal_cartilage",
                ],
            ),
            (ObjectKind::Muscle, &["autochthon", "iliopsoas", "gluteus", "muscle"]),
        ];
        let name = class.to_ascii_lowercase();
        RULES
            .iter()
            .find(|(_, words)| words.iter().any(|w| name.contains(w)))
            .map_or(ObjectKind::Organ, |(kind, _)| *kind)
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Organ => "organs",
            ObjectKind::Vessel => "vessels",
            ObjectKind::Bone => "bones",
            ObjectKind::Muscle => "muscles",
            ObjectKind::Lesion => "lesions",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ObjectKind::{self, *};

    #[test]
    fn the_benchmarks_classes_get_their_kinds() {
        for (class, kind) in [
            ("liver", Organ),
            ("spinal_cord", Organ),
            ("colon", Organ),
            ("atrial_appendage_left", Organ),
            ("aorta", Vessel),
            ("inferior_vena_cava", Vessel),
            ("portal_vein_and_splenic_vein", Vessel),
            ("iliac_vena_left", Vessel),
            ("brachiocephalic_trunk", Vessel),
            ("common_carotid_artery_left", Vessel),
            ("vertebrae_T12", Bone),
            ("rib_left_8", Bone),
            ("humerus_left", Bone),
            ("hip_right", Bone),
            ("autochthon_left", Muscle),
            ("gluteus_maximus_right", Muscle),
            ("kidney_cyst_left", Lesion),
            ("phantom liver_lesion", Lesion),
            ("phantom vertebra", Bone),
            ("phantom aorta", Vessel),
            ("phantom kidney_left", Organ),
        ] {
            assert_eq!(ObjectKind::of(class), kind, "{class}");
        }
        assert_eq!(Lesion.to_string(), "lesions");
    }
}
